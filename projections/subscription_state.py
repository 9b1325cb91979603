"""One subscription's state at any instant, from its snapshots and the customer's discounts.

Each ledger event carries the whole subscription as it was; a snapshot governs from its
effective time until the next one. The effective time is the business time Stripe states
(`start_date`, `ended_at`, `trial_end`, a renewal's period start) when there is one, else
the event's `created` (docs/metrics.md, "When a change counts").
Changes Stripe schedules inside a snapshot (a trial's end, a discount's end, collection
resuming) take effect at their stated time even when no event marks them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from projections.customer_facts import DiscountFact, SubscriptionSnapshot
from projections.item_mrr import ItemInput, coupon_counts, subscription_mrr
from projections.metric_settings import MetricSettings
from projections.read_events import Evidence
from projections.stripe_fields import Coupon, Discount, Subscription

ENDED = frozenset({"canceled", "incomplete_expired"})
CONTRIBUTING = frozenset({"active", "past_due"})


def discount_key(discount: Discount) -> str:
    """Discounts rendered before they had ids are told apart by coupon and owner."""
    return discount.id or f"{discount.coupon_id}@{discount.subscription or discount.customer}"


class DiscountBook:
    """Every discount a customer's events mention: what it is, and when it was removed."""

    def __init__(
        self, facts: Sequence[DiscountFact], snapshots: Iterable[SubscriptionSnapshot]
    ) -> None:
        self._objects: dict[str, tuple[Evidence, Discount]] = {}
        self._deleted_at: dict[str, Evidence] = {}
        self._announced: dict[str, Evidence] = {}  # first discount event naming it
        for snapshot in snapshots:
            sub = snapshot.subscription
            embedded = [*sub.discounts, *(d for item in sub.items for d in item.discounts)]
            for discount in embedded:
                self._remember(discount, snapshot.evidence)
        for fact in facts:
            key = discount_key(fact.discount)
            self._remember(fact.discount, fact.evidence)
            if fact.deleted:
                if key not in self._deleted_at or fact.evidence < self._deleted_at[key]:
                    self._deleted_at[key] = fact.evidence
            elif key not in self._announced:
                self._announced[key] = fact.evidence

    def _remember(self, discount: Discount, evidence: Evidence) -> None:
        key = discount_key(discount)
        known = self._objects.get(key)
        # Keep the newest rendering that has the coupon expanded.
        if known is None or (discount.coupon is not None and evidence >= known[0]):
            self._objects[key] = (evidence, discount)

    def coupon_in_force(self, key: str, at: datetime, settings: MetricSettings) -> Coupon | None:
        known = self._objects.get(key)
        discount = known[1] if known is not None else None
        coupon = discount.coupon if discount is not None else None
        if discount is None or coupon is None:
            return None  # only an id is known: its terms come with a discount event
        if discount.start is not None and at < discount.start:
            return None
        if discount.end is not None and at >= discount.end:
            return None
        deleted = self._deleted_at.get(key)
        if deleted is not None and at >= deleted.created:
            return None
        return (
            coupon
            if coupon_counts(coupon, settings.subtract_repeating, settings.subtract_once)
            else None
        )

    def attached_by_events(
        self, subscription_id: str, known_before: Evidence
    ) -> list[tuple[str, str | None]]:
        """Discounts announced by discount events after the snapshot was rendered: the
        snapshot cannot list them yet. Returns (key, subscription item or None)."""
        found = []
        for key, evidence in self._announced.items():
            discount = self._objects[key][1]
            if discount.subscription == subscription_id and evidence > known_before:
                found.append((key, discount.subscription_item))
        return found

    def customer_level(self) -> list[str]:
        return [
            key
            for key in self._announced
            if (d := self._objects[key][1]).subscription is None
            and d.subscription_item is None
            and d.invoice is None
        ]

    def change_times(self) -> list[tuple[datetime, Evidence]]:
        times: list[tuple[datetime, Evidence]] = []
        for key, (evidence, discount) in self._objects.items():
            announced = self._announced.get(key, evidence)
            times.append((announced.created, announced))
            for moment in (discount.start, discount.end):
                if moment is not None:
                    times.append((moment, announced))
        times.extend((e.created, e) for e in self._deleted_at.values())
        return times


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """A subscription over an interval in which nothing about it changes."""

    subscription_id: str
    status: str  # Stripe's status (a recovered delinquency reads as past_due)
    currency: str
    mrr: Fraction  # what it adds to the customer's MRR
    potential_mrr: Fraction  # its MRR were it contributing (trials, committed MRR)
    trialing: bool
    pause_collection: bool
    paused: bool  # live, with its MRR withheld by a pause
    pending_cancellation: bool
    delinquent_end: bool  # ended by non-payment: unpaid, or canceled for payment_failed
    discount_keys: tuple[str, ...]
    evidence: Evidence  # the snapshot that governs it


def _stated_time(
    snapshot: SubscriptionSnapshot, previous: SubscriptionSnapshot | None
) -> datetime | None:
    """The business time a snapshot states for its own change, if it states one."""
    sub = snapshot.subscription
    if previous is None:
        return sub.start_date or sub.created  # the first known state tells its own start
    if sub.status in ENDED and (sub.ended_at or sub.canceled_at):
        return sub.ended_at or sub.canceled_at
    before = previous.subscription
    if before.status == "trialing" and sub.status != "trialing":
        return sub.trial_end or before.trial_end
    start = sub.current_period_start
    if start is not None and before.current_period_start not in (None, start):
        return start  # a renewal: the new period began then
    return None


def _effective_times(snapshots: Sequence[SubscriptionSnapshot]) -> list[datetime]:
    """When each snapshot (in Stripe's own order, see SubscriptionSnapshot.sort_key) takes
    effect: the business time it states, else its event's `created`.

    A test clock sends `created` in wall-clock time and the object's fields in simulated
    time, so a stated time wins over `created` whichever is later. Stated times that run
    backwards in that order give way to the later snapshot's; a snapshot that states none
    is dated at its `created`, kept between the stated times around it.
    """
    stated: list[datetime | None] = []
    previous: SubscriptionSnapshot | None = None
    for snapshot in snapshots:
        stated.append(_stated_time(snapshot, previous))
        previous = snapshot
    ceilings: list[datetime | None] = [None] * len(stated)  # the next stated time
    later: datetime | None = None
    for i in range(len(stated) - 1, -1, -1):
        ceilings[i] = later
        moment = stated[i]
        if moment is not None:
            later = stated[i] = moment if later is None else min(moment, later)
    times: list[datetime] = []
    floor: datetime | None = None
    for snapshot, moment, ceiling in zip(snapshots, stated, ceilings, strict=True):
        if moment is None:
            moment = snapshot.evidence.created
            if ceiling is not None:
                moment = min(moment, ceiling)
            if floor is not None:
                moment = max(moment, floor)
        else:
            floor = moment
        times.append(moment)
    return times


def _recovered_statuses(
    snapshots: Sequence[SubscriptionSnapshot], times: Sequence[datetime], window_days: int
) -> list[str]:
    """An `unpaid` stretch that returns to active/past_due within the recovery window is
    read as past_due throughout: the churn and the comeback both disappear."""
    statuses = [s.subscription.status or "incomplete" for s in snapshots]
    window = timedelta(days=window_days)
    i = 0
    while i < len(statuses):
        if statuses[i] != "unpaid":
            i += 1
            continue
        j = i
        while j < len(statuses) and statuses[j] == "unpaid":
            j += 1
        if (
            window_days > 0
            and j < len(statuses)
            and statuses[j] in CONTRIBUTING
            and times[j] - times[i] <= window
        ):
            statuses[i:j] = ["past_due"] * (j - i)
        i = j
    return statuses


class SubscriptionTimeline:
    def __init__(
        self,
        snapshots: Sequence[SubscriptionSnapshot],
        book: DiscountBook,
        settings: MetricSettings,
        *,
        tax_shares: Mapping[str, Fraction],
        first_paid_at: datetime | None,
    ) -> None:
        self.snapshots = snapshots
        self.subscription_id = snapshots[0].subscription.id
        self._book = book
        self._settings = settings
        self._tax_shares = tax_shares
        self._first_paid_at = first_paid_at
        self._times = _effective_times(snapshots)
        self._statuses = _recovered_statuses(
            snapshots, self._times, settings.delinquency_recovery_window_days
        )

    def change_times(self) -> list[tuple[datetime, Evidence]]:
        """Every instant at which this subscription's state may change, with the event
        that revealed it."""
        found: list[tuple[datetime, Evidence]] = []
        for at, snapshot in zip(self._times, self.snapshots, strict=True):
            sub, evidence = snapshot.subscription, snapshot.evidence
            found.append((at, evidence))
            scheduled_times = (sub.trial_start, sub.trial_end, sub.pause_resumes_at, sub.ended_at)
            for scheduled in scheduled_times:
                if scheduled is not None:
                    found.append((scheduled, evidence))
        if self._first_paid_at is not None and self._settings.activation == "at_first_payment":
            found.append((self._first_paid_at, self.snapshots[0].evidence))
        return found

    def state_at(self, at: datetime) -> SubscriptionState | None:
        """The state in force from `at` on (until the next change time)."""
        index = bisect.bisect_right(self._times, at) - 1
        if index < 0:
            return None
        snapshot = self.snapshots[index]
        sub = snapshot.subscription
        status = self._statuses[index]
        settings = self._settings
        status = _status_by_business_time(sub, status, at)
        keys = self._discount_keys(snapshot)
        potential = self._mrr(sub, keys, snapshot, at)
        ended = status in ENDED
        pause = (
            not ended
            and sub.pause_behavior is not None
            and (sub.pause_resumes_at is None or at < sub.pause_resumes_at)
        )
        pending_cancellation = not ended and (sub.cancel_at_period_end or sub.cancel_at is not None)
        contributes = status in CONTRIBUTING or (status == "trialing" and settings.include_trials)
        withheld_by_pause = pause and not settings.pause_counts
        if withheld_by_pause or status == "paused":
            contributes = False
        if settings.churn_recognition == "scheduled" and pending_cancellation:
            contributes = False
        if settings.activation == "at_first_payment" and (
            self._first_paid_at is None or at < self._first_paid_at
        ):
            contributes = False
        return SubscriptionState(
            subscription_id=sub.id,
            status=status,
            currency=(sub.currency or _price_currency(sub) or "usd").lower(),
            mrr=potential if contributes else Fraction(0),
            potential_mrr=potential,
            trialing=status == "trialing",
            pause_collection=pause,
            paused=status == "paused" or (withheld_by_pause and status in CONTRIBUTING),
            pending_cancellation=pending_cancellation,
            delinquent_end=status == "unpaid"
            or (status == "canceled" and sub.cancellation_reason == "payment_failed"),
            discount_keys=tuple(k for k in keys if self._book.coupon_in_force(k, at, settings)),
            evidence=snapshot.evidence,
        )

    def _discount_keys(self, snapshot: SubscriptionSnapshot) -> list[str]:
        sub = snapshot.subscription
        keys = [*sub.discount_ids, *(discount_key(d) for d in sub.discounts)]
        attached = self._book.attached_by_events(sub.id, snapshot.evidence)
        keys += [key for key, item_id in attached if item_id is None]
        if not keys:
            keys = self._book.customer_level()  # a customer's coupon, unless the sub has one
        for item in sub.items:
            keys += [*item.discount_ids, *(discount_key(d) for d in item.discounts)]
        return list(dict.fromkeys(keys))

    def _mrr(
        self, sub: Subscription, keys: list[str], snapshot: SubscriptionSnapshot, at: datetime
    ) -> Fraction:
        settings, book = self._settings, self._book
        item_keys: dict[str, list[str]] = {}
        for key, item_id in book.attached_by_events(sub.id, snapshot.evidence):
            if item_id is not None:
                item_keys.setdefault(item_id, []).append(key)
        items = []
        item_level: set[str] = set()
        for item in sub.items:
            own = [*item.discount_ids, *(discount_key(d) for d in item.discounts)]
            own += item_keys.get(item.id, [])
            item_level.update(own)
            coupons = tuple(c for k in own if (c := book.coupon_in_force(k, at, settings)))
            share = self._tax_shares.get(item.price.id or "", Fraction(0))
            if item.price.tax_behavior != "inclusive":
                share = Fraction(0)
            items.append(ItemInput(item.price, item.quantity, coupons, share))
        subscription_coupons = [
            c for k in keys if k not in item_level and (c := book.coupon_in_force(k, at, settings))
        ]
        currency = sub.currency or _price_currency(sub) or "usd"
        return subscription_mrr(items, subscription_coupons, currency)


def _status_by_business_time(sub: Subscription, status: str, at: datetime) -> str:
    """The status a snapshot implies at `at` from the times it states itself.

    A snapshot usually governs only after the event that carried it, but the first one
    known for a subscription (a backfill finds only the latest state) also tells its past:
    a subscription canceled at `ended_at` was live before it, and one whose trial ran from
    `trial_start` to `trial_end` was trialing then.
    """
    if status == "canceled" and sub.ended_at is not None and at < sub.ended_at:
        status = "active"
    in_trial = sub.trial_end is not None and at < sub.trial_end
    if (
        in_trial
        and sub.trial_start is not None
        and at >= sub.trial_start
        and status in CONTRIBUTING
    ):
        return "trialing"
    if status == "trialing" and sub.trial_end is not None and at >= sub.trial_end:
        return "active"  # a trial converts at trial_end (activation counts from there)
    return status


def _price_currency(sub: Subscription) -> str | None:
    return next((item.price.currency for item in sub.items if item.price.currency), None)
