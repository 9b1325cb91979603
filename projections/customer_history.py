"""A customer's MRR history and movements, re-derived from all of that customer's facts.

Derive, don't patch: whenever a customer's events change, the whole history is computed
again from the full set, so late, duplicated and out-of-order deliveries land in the
right place by construction. Movements are classified at the customer level, every
change at one instant netted into one (METRICS.md, "Customers and movements").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from fractions import Fraction

from projections.customer_facts import CustomerFacts
from projections.metric_settings import MetricSettings
from projections.read_events import Evidence
from projections.subscription_state import (
    CONTRIBUTING,
    DiscountBook,
    SubscriptionState,
    SubscriptionTimeline,
)


@dataclass(frozen=True, slots=True)
class SubscriptionSegment:
    state: SubscriptionState
    valid_from: datetime
    valid_to: datetime | None


@dataclass(frozen=True, slots=True)
class MrrInterval:
    valid_from: datetime
    valid_to: datetime | None
    mrr: Fraction
    currency: str
    state: str  # active, paused, free, trialing, churned or inactive
    causes: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class Movement:
    at: datetime
    kind: str  # new, expansion, contraction, churn, reactivation
    subtype: str | None  # resume, pause, free, voluntary, delinquent
    amount: Fraction
    mrr_before: Fraction
    mrr_after: Fraction
    currency: str
    causes: tuple[Evidence, ...]

    @property
    def known_at(self) -> datetime:
        return max(c.created for c in self.causes)


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    account: str
    customer_id: str
    currency: str | None
    subscriptions: tuple[SubscriptionSegment, ...]
    intervals: tuple[MrrInterval, ...]
    movements: tuple[Movement, ...]


_STATE_FIELDS = [f.name for f in fields(SubscriptionState) if f.name != "evidence"]


def _same(a: SubscriptionState | None, b: SubscriptionState | None) -> bool:
    if a is None or b is None:
        return a is b
    return all(getattr(a, name) == getattr(b, name) for name in _STATE_FIELDS)


def _tax_shares(facts: CustomerFacts) -> dict[str, Fraction]:
    """The tax part of each tax-inclusive price, read off its latest invoice line."""
    shares: dict[str, Fraction] = {}
    invoices = sorted(facts.latest_invoices(), key=lambda i: (i.created or datetime.min, i.id))
    for invoice in invoices:
        for line in invoice.lines:
            if line.price_id and line.amount > 0 and line.inclusive_tax_amount > 0:
                shares[line.price_id] = Fraction(line.inclusive_tax_amount, line.amount)
    return shares


def _first_paid(facts: CustomerFacts) -> dict[str, datetime]:
    """When each subscription's first non-zero invoice was paid."""
    first: dict[str, datetime] = {}
    for invoice in facts.latest_invoices():
        if invoice.subscription and invoice.paid_at and (invoice.amount_paid or 0) > 0:
            known = first.get(invoice.subscription)
            first[invoice.subscription] = min(known or invoice.paid_at, invoice.paid_at)
    return first


def _customer_state(
    states: Mapping[str, SubscriptionState | None],
    total: Fraction,
    ever_active: bool,
    settings: MetricSettings,
) -> str:
    live = [s for s in states.values() if s is not None]
    if total > 0:
        return "active"
    if any(s.paused for s in live):
        return "paused"
    if settings.free_customer_handling == "active" and any(
        s.status in CONTRIBUTING and s.potential_mrr == 0 and not s.paused for s in live
    ):
        return "free"
    if any(s.trialing for s in live):
        return "trialing"
    return "churned" if ever_active else "inactive"


def _classify(
    before: Fraction,
    after: Fraction,
    state_before: str,
    state_after: str,
    ever_active: bool,
    ended_by_non_payment: bool,
) -> tuple[str, str | None]:
    if before == 0:
        if not ever_active:
            return "new", None
        if state_before == "paused":
            return "expansion", "resume"
        if state_before == "free":
            return "expansion", "free"
        return "reactivation", None
    if after > before:
        return "expansion", None
    if after > 0:
        return "contraction", None
    if state_after == "paused":
        return "contraction", "pause"
    if state_after == "free":
        return "contraction", "free"
    return "churn", "delinquent" if ended_by_non_payment else "voluntary"


def derive_customer_history(facts: CustomerFacts, settings: MetricSettings) -> CustomerHistory:
    all_snapshots = [s for snaps in facts.subscriptions.values() for s in snaps]
    book = DiscountBook(facts.discounts, all_snapshots)
    tax_shares = _tax_shares(facts)
    first_paid = _first_paid(facts)
    timelines = [
        SubscriptionTimeline(
            snaps, book, settings, tax_shares=tax_shares, first_paid_at=first_paid.get(sub_id)
        )
        for sub_id, snaps in sorted(facts.subscriptions.items())
    ]
    # Every instant something may change, with the events that revealed it.
    tags: dict[datetime, set[Evidence]] = defaultdict(set)
    for timeline in timelines:
        for at, evidence in timeline.change_times():
            tags[at].add(evidence)
    if timelines:
        for at, evidence in book.change_times():
            tags[at].add(evidence)

    segments: list[SubscriptionSegment] = []
    open_segments: dict[str, tuple[SubscriptionState, datetime]] = {}
    intervals: list[MrrInterval] = []
    movements: list[Movement] = []
    previous: dict[str, SubscriptionState | None] = {t.subscription_id: None for t in timelines}
    total_before, state_before, ever_active = Fraction(0), "inactive", False
    currency: str | None = None

    for at in sorted(tags):
        states = {t.subscription_id: t.state_at(at) for t in timelines}
        changed = [sid for sid, state in states.items() if not _same(previous[sid], state)]
        if not changed:
            continue
        for sid in changed:
            if sid in open_segments:
                ending, since = open_segments.pop(sid)
                segments.append(SubscriptionSegment(ending, since, at))
            new_state = states[sid]
            if new_state is not None:
                open_segments[sid] = (new_state, at)
                currency = currency or new_state.currency
        total = sum((s.mrr for s in states.values() if s is not None), Fraction(0))
        state = _customer_state(states, total, ever_active or total > 0, settings)
        causes = tuple(sorted(tags[at]))
        if total != total_before:
            moved = [states[sid] for sid in changed if _mrr(previous[sid]) != _mrr(states[sid])]
            kind, subtype = _classify(
                total_before,
                total,
                state_before,
                state,
                ever_active,
                any(s is not None and s.delinquent_end for s in moved),
            )
            # Every kind's amount is the size of the step (new: after; churn: before).
            amount = abs(total - total_before)
            movements.append(
                Movement(at, kind, subtype, amount, total_before, total, currency or "usd", causes)
            )
        if total != total_before or state != state_before or not intervals:
            if intervals:
                last = intervals[-1]
                intervals[-1] = MrrInterval(
                    last.valid_from, at, last.mrr, last.currency, last.state, last.causes
                )
            intervals.append(MrrInterval(at, None, total, currency or "usd", state, causes))
        ever_active = ever_active or total > 0
        total_before, state_before = total, state
        previous = states
    for ending, since in open_segments.values():
        segments.append(SubscriptionSegment(ending, since, None))
    segments.sort(key=lambda s: (s.state.subscription_id, s.valid_from))
    return CustomerHistory(
        facts.account,
        facts.customer_id,
        currency,
        tuple(segments),
        tuple(intervals),
        tuple(movements),
    )


def _mrr(state: SubscriptionState | None) -> Fraction:
    return state.mrr if state is not None else Fraction(0)
