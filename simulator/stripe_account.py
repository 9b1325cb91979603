"""A simulated Stripe account: it keeps each object's current state and emits, per
change, the webhook events Stripe would send, in the pre-2025 (2020-03-02) or the basil
(2025-03-31) field layout, plus the balance-transaction snapshot records a backfill stores.

Objects start as copies of the real fixtures (simulator.templates) with our fields
written over them, so the fields we do not model stay realistic. Amounts are given in major
units as decimal strings ("50.00"); times as aware UTC datetimes. Ids are derived from a
namespace and a counter, so building the same account twice gives the same events.
"""

from __future__ import annotations

import calendar
import copy
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, Literal

from simulator.templates import object_2020, resource

Json = dict[str, Any]
Layout = Literal["2020-03-02", "2025-03-31.basil"]
Interval = Literal["day", "week", "month", "year"]
Duration = Literal["forever", "repeating", "once"]
TaxBehavior = Literal["exclusive", "inclusive", "unspecified"]

OLD: Final[Layout] = "2020-03-02"
BASIL: Final[Layout] = "2025-03-31.basil"
LAYOUTS: Final[tuple[Layout, Layout]] = (OLD, BASIL)

CURRENCY: Final = "usd"
SNAPSHOT_TYPE: Final = "balance_transaction.snapshot"


# --- money and time ------------------------------------------------------------------------


def unix(at: datetime) -> int:
    """Stripe's unix seconds; refuses naive or sub-second times (Stripe has neither)."""
    if at.tzinfo is None or at.microsecond:
        raise ValueError(f"{at!r}: give whole-second, timezone-aware times")
    return int(at.timestamp())


def minor(amount: str) -> Decimal:
    """Major units as exact minor units: "50.00" -> 5000, "0.005" -> 0.5 (a sub-cent price)."""
    return Decimal(amount) * 100


def cents(amount: str) -> int:
    value = minor(amount)
    if value != value.to_integral_value():
        raise ValueError(f"{amount!r} is not a whole number of cents")
    return int(value)


def decimal_text(value: Decimal) -> str:
    """A Decimal as Stripe writes `*_decimal` fields: plain digits, no exponent ("2000")."""
    return format(value.normalize(), "f")


def half_even(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def card_fee(amount: int) -> int:
    """Stripe's US card fee, 2.9% + 30 cents, rounded half-even to the cent."""
    return half_even(Decimal(amount) * Decimal("0.029") + 30)


def add_interval(start: datetime, interval: str, count: int = 1) -> datetime:
    """One billing period later; month ends clamp (01-31 + 1 month = 02-28) as Stripe does."""
    if interval == "day":
        return start + timedelta(days=count)
    if interval == "week":
        return start + timedelta(weeks=count)
    months = count * (12 if interval == "year" else 1)
    year, month0 = divmod(start.month - 1 + months, 12)
    year += start.year
    day = min(start.day, calendar.monthrange(year, month0 + 1)[1])
    return start.replace(year=year, month=month0 + 1, day=day)


# --- what a scenario asks for ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tier:
    """A price tier; `up_to` None is the last tier (Stripe's "inf", sent as null)."""

    up_to: int | None
    unit_amount: str
    flat_amount: str | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """A subscription item to create: a price id and a quantity (None for metered prices)."""

    price: str
    quantity: int | None = 1


@dataclass(frozen=True, slots=True)
class Line:
    """An invoice line to bill. With `subscription_item` it is a subscription line (or, with
    `proration`, the proration invoice item Stripe makes for that item); else an invoice item."""

    description: str
    amount: str
    price: str | None = None
    quantity: int | None = 1
    subscription_item: str | None = None
    proration: bool = False
    period: tuple[datetime, datetime] | None = None


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase of a subscription schedule."""

    start: datetime
    end: datetime | None
    items: tuple[Item, ...]


@dataclass(slots=True)
class _SubscriptionState:
    previous_period: tuple[int, int] | None = None
    discount: str | None = None
    discounted_invoices: int = 0


@dataclass(slots=True)
class _InvoiceState:
    payment_intent: str | None = None
    charges: list[str] = field(default_factory=list)


# --- the account -----------------------------------------------------------------------------


class StripeAccount:
    """One Stripe account in one API layout. Call its methods in time order; each appends the
    events that change produces to `events` and any balance-transaction snapshot to `backfill`.
    """

    def __init__(
        self,
        layout: Layout,
        *,
        namespace: str = "acct",
        sink: Callable[[Json], None] | None = None,
    ) -> None:
        """With a `sink`, each event and snapshot record goes to it as it is made instead of
        into `events` and `backfill`, so a long history needs no memory for what is done."""
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}")
        self.layout: Layout = layout
        self.namespace = namespace
        self.events: list[Json] = []
        self.backfill: list[Json] = []
        self._sink = sink
        self._last_created = 0
        self._customer_currency: dict[str, str] = {}
        self._objects: dict[str, Json] = {}
        self._prices: dict[str, Json] = {}
        self._plans: dict[str, Json | None] = {}
        self._coupons: dict[str, Json] = {}
        self._subscriptions: dict[str, _SubscriptionState] = {}
        self._invoices: dict[str, _InvoiceState] = {}
        self._invoice_numbers: dict[str, int] = {}
        self._counter = 0

    @property
    def basil(self) -> bool:
        return self.layout == BASIL

    def object(self, object_id: str) -> Json:
        """A copy of an object's current state."""
        return copy.deepcopy(self._objects[object_id])

    # ids and envelopes ------------------------------------------------------------------

    def _hex(self, kind: str, length: int = 24) -> str:
        self._counter += 1
        seed = f"{self.namespace}|{self.layout}|{kind}|{self._counter}"
        return hashlib.sha256(seed.encode()).hexdigest()[:length]

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{self._hex(prefix)}"

    def _request(self, automatic: bool) -> Json:
        # Changes Stripe makes by itself (renewals, trial ends, retries) carry no request id.
        if automatic:
            return {"id": None, "idempotency_key": None}
        return {"id": f"req_{self._hex('req', 14)}", "idempotency_key": self._hex("idem", 32)}

    def _emit(
        self,
        event_type: str,
        obj: Json,
        at: datetime,
        *,
        previous: Json | None = None,
        automatic: bool = False,
    ) -> Json:
        created = unix(at)
        if created < self._last_created:
            raise ValueError(f"{event_type} at {at} is earlier than the last event")
        self._last_created = created
        data: Json = {"object": copy.deepcopy(obj)}
        # Only `*.updated` events carry previous_attributes.
        if event_type.endswith(".updated"):
            data["previous_attributes"] = copy.deepcopy(previous or {})
        event: Json = {
            "id": f"evt_{self._hex('evt')}",
            "object": "event",
            "api_version": self.layout,
            "created": created,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": self._request(automatic),
            "type": event_type,
        }
        if self._sink is not None:
            self._sink(event)
        else:
            self.events.append(event)
        return event

    def _change(self, object_id: str, mutate: Callable[[Json], None]) -> Json:
        """Apply `mutate` to an object; return the previous values of the top-level fields that
        changed (Stripe's `previous_attributes`, here with whole values for nested fields)."""
        obj = self._objects[object_id]
        before = copy.deepcopy(obj)
        mutate(obj)
        return {k: before.get(k) for k in obj if before.get(k) != obj.get(k)}

    def _snapshot(self, balance_transaction: Json, at: datetime) -> None:
        # Webhooks never carry fees: the backfill fetches balance transactions and stores each
        # as a snapshot record in this envelope (pending_webhooks 0, marked by `stripe_ledger`).
        record = {
            "id": f"evt_snap_{self._hex('snap')}",
            "object": "event",
            "type": SNAPSHOT_TYPE,
            "api_version": self.layout,
            "created": unix(at),
            "livemode": False,
            "pending_webhooks": 0,
            "request": None,
            "data": {"object": copy.deepcopy(balance_transaction)},
            "stripe_ledger": {"snapshot": True},
        }
        if self._sink is not None:
            self._sink(record)
        else:
            self.backfill.append(record)

    def forget(self, *object_ids: str) -> None:
        """Drop finished objects (a settled invoice and its charges) from memory; they can no
        longer be changed. A long simulation calls this to stay flat in memory."""
        for object_id in object_ids:
            self._objects.pop(object_id, None)
            self._invoices.pop(object_id, None)
            self._subscriptions.pop(object_id, None)

    # catalogue (prices and coupons emit no events here) -----------------------------------

    def price(
        self,
        price_id: str,
        *,
        amount: str | None = None,
        interval: Interval | None = "month",
        interval_count: int = 1,
        usage_type: Literal["licensed", "metered"] = "licensed",
        tiers: Sequence[Tier] = (),
        tiers_mode: Literal["graduated", "volume"] | None = None,
        tax_behavior: TaxBehavior = "exclusive",
        nickname: str | None = None,
        currency: str = CURRENCY,
    ) -> str:
        """Define a price (`interval=None`: one-time). Give `amount` or `tiers`."""
        if (amount is None) == (not tiers):
            raise ValueError("a price has either an amount or tiers")
        unit = minor(amount) if amount is not None else None
        unit_int = int(unit) if unit is not None and unit == unit.to_integral_value() else None
        product = f"prod_{price_id.removeprefix('price_')}"
        tier_json = [_tier_json(t) for t in tiers] or None
        recurring: Json | None = None
        if interval is not None:
            recurring = {
                "aggregate_usage": "sum" if usage_type == "metered" else None,
                "interval": interval,
                "interval_count": interval_count,
                "trial_period_days": None,
                "usage_type": usage_type,
            }
            if self.basil:
                # Basil removed legacy usage records: a metered price bills a billing meter.
                del recurring["aggregate_usage"]
                recurring["meter"] = f"mtr_{product}" if usage_type == "metered" else None
        if self.basil:
            price = resource("price")
            price["custom_unit_amount"] = None
        else:
            price = object_2020("subscription_created")["items"]["data"][0]
            price = price["price"]
        price.update(
            id=price_id,
            active=True,
            billing_scheme="tiered" if tiers else "per_unit",
            created=unix(datetime(2024, 1, 2, tzinfo=UTC)),
            currency=currency,
            livemode=False,
            lookup_key=None,
            metadata={},
            nickname=nickname,
            product=product,
            recurring=recurring,
            tax_behavior=tax_behavior,
            tiers_mode=tiers_mode if tiers else None,
            transform_quantity=None,
            type="recurring" if recurring is not None else "one_time",
            unit_amount=unit_int,
            unit_amount_decimal=decimal_text(unit) if unit is not None else None,
        )
        if tier_json is not None:
            price["tiers"] = tier_json
        self._prices[price_id] = price
        self._plans[price_id] = self._plan(price) if recurring is not None else None
        return price_id

    def price_object(self, price_id: str) -> Json:
        """A price as defined (not a copy: do not change it)."""
        return self._prices[price_id]

    def _plan(self, price: Json) -> Json:
        # Subscription items also carry the legacy `plan` mirror of their price.
        if self.basil:
            plan = resource("plan")
        else:
            plan = object_2020("subscription_created")["items"]["data"][0]
            plan = plan["plan"]
        recurring = price["recurring"]
        plan.update(
            id=price["id"],
            active=True,
            aggregate_usage=recurring.get("aggregate_usage"),
            amount=price["unit_amount"],
            amount_decimal=price["unit_amount_decimal"],
            billing_scheme=price["billing_scheme"],
            created=price["created"],
            currency=price["currency"],
            interval=recurring["interval"],
            interval_count=recurring["interval_count"],
            livemode=False,
            metadata={},
            nickname=price["nickname"],
            product=price["product"],
            tiers=copy.deepcopy(price.get("tiers")),
            tiers_mode=price["tiers_mode"],
            transform_usage=None,
            trial_period_days=None,
            usage_type=recurring["usage_type"],
        )
        if self.basil:
            del plan["aggregate_usage"]
            plan["meter"] = recurring["meter"]
        return plan

    def coupon(
        self,
        coupon_id: str,
        *,
        percent_off: str | None = None,
        amount_off: str | None = None,
        duration: Duration = "forever",
        duration_in_months: int | None = None,
        name: str | None = None,
        currency: str = CURRENCY,
    ) -> str:
        if (percent_off is None) == (amount_off is None):
            raise ValueError("a coupon has either percent_off or amount_off")
        if (duration == "repeating") != (duration_in_months is not None):
            raise ValueError("duration_in_months goes with a repeating coupon, only")
        coupon = resource("coupon")
        coupon.update(
            id=coupon_id,
            # A JSON number, as Stripe sends it (e.g. 25.5).
            percent_off=float(percent_off) if percent_off is not None else None,
            amount_off=cents(amount_off) if amount_off is not None else None,
            currency=currency if amount_off is not None else None,
            duration=duration,
            duration_in_months=duration_in_months,
            created=unix(datetime(2024, 1, 2, tzinfo=UTC)),
            livemode=False,
            name=name or coupon_id,
            redeem_by=None,
            valid=True,
        )
        self._coupons[coupon_id] = coupon
        return coupon_id

    # customers ------------------------------------------------------------------------------

    def customer(
        self, customer_id: str, *, at: datetime, name: str | None = None, email: str | None = None
    ) -> str:
        """Create a customer: `customer.created`."""
        if self.basil:
            obj = resource("customer")
        else:
            obj = object_2020("customer_updated")
            obj["sources"]["url"] = f"/v1/customers/{customer_id}/sources"
            obj["tax_ids"]["url"] = f"/v1/customers/{customer_id}/tax_ids"
            obj["subscriptions"] = _list([], f"/v1/customers/{customer_id}/subscriptions")
            obj["shipping"] = None
            obj["phone"] = None
        label = customer_id.removeprefix("cus_")
        obj.update(
            id=customer_id,
            created=unix(at),
            currency=None,
            default_source=None,
            delinquent=False,
            description=None,
            discount=None,
            email=email or f"billing+{label.lower()}@example.com",
            invoice_prefix=_invoice_prefix(customer_id),
            livemode=False,
            metadata={},
            name=name or f"Customer {label}",
            next_invoice_sequence=1,
        )
        obj["invoice_settings"]["default_payment_method"] = f"pm_{label}"
        self._objects[customer_id] = obj
        self._emit("customer.created", obj, at)
        return customer_id

    # subscriptions --------------------------------------------------------------------------

    def subscribe(
        self,
        subscription_id: str,
        customer: str,
        items: Sequence[Item],
        *,
        at: datetime,
        trial_end: datetime | None = None,
        status: str | None = None,
        coupon: str | None = None,
    ) -> str:
        """Create a subscription: `customer.subscription.created` (and
        `customer.discount.created` with a coupon). Status: trialing with a trial, else active
        unless given (e.g. "incomplete" when the first payment is going to fail)."""
        start = unix(at)
        first = self._prices[items[0].price]["recurring"]
        currency = self._prices[items[0].price]["currency"]
        self._customer_currency[customer] = currency
        end = (
            unix(trial_end)
            if trial_end is not None
            else unix(add_interval(at, first["interval"], first["interval_count"]))
        )
        if self.basil:
            sub = resource("subscription")
            for key in ("customer_account", "managed_payments", "billing_schedules"):
                sub.pop(key, None)  # fields from later API versions than basil
            sub["automatic_tax"] = {"enabled": False, "liability": None, "disabled_reason": None}
            sub["discounts"] = []
            sub["invoice_settings"]["issuer"] = {"type": "self"}
            sub.update(
                billing_cycle_anchor_config=None,
                billing_mode={"type": "classic", "flexible": None},
                currency=currency,
                description=None,
                pending_invoice_item_interval=None,
                pending_update=None,
                transfer_data=None,
                trial_settings={"end_behavior": {"missing_payment_method": "create_invoice"}},
            )
        else:
            sub = object_2020("subscription_created")
            sub["discount"] = None
        sub.update(
            id=subscription_id,
            object="subscription",
            billing_cycle_anchor=end if trial_end is not None else start,
            billing_thresholds=None,
            cancel_at=None,
            cancel_at_period_end=False,
            canceled_at=None,
            cancellation_details={"comment": None, "feedback": None, "reason": None},
            collection_method="charge_automatically",
            created=start,
            customer=customer,
            days_until_due=None,
            default_payment_method=None,
            default_tax_rates=[],
            ended_at=None,
            latest_invoice=None,
            livemode=False,
            metadata={},
            next_pending_invoice_item_invoice=None,
            pause_collection=None,
            schedule=None,
            start_date=start,
            status=status or ("trialing" if trial_end is not None else "active"),
            trial_end=unix(trial_end) if trial_end is not None else None,
            trial_start=start if trial_end is not None else None,
        )
        data = [self._item_json(subscription_id, item, start) for item in items]
        sub["items"] = _list(data, f"/v1/subscription_items?subscription={subscription_id}")
        self._objects[subscription_id] = sub
        self._subscriptions[subscription_id] = _SubscriptionState()
        _set_period(sub, start, end, basil=self.basil)
        self._mirror_single_item(sub)
        discount = self._new_discount(coupon, customer, subscription_id, at) if coupon else None
        if discount is not None:
            self._attach_discount(sub, discount)
        self._emit("customer.subscription.created", sub, at)
        if discount is not None:
            self._emit("customer.discount.created", discount, at)
        return subscription_id

    def _item_json(self, subscription_id: str, item: Item, created: int) -> Json:
        obj = (
            resource("subscription_item")
            if self.basil
            else object_2020("subscription_created")["items"]["data"][0]
        )
        obj.update(
            id=self.new_id("si"),
            billing_thresholds=None,
            created=created,
            metadata={},
            plan=copy.deepcopy(self._plans[item.price]),
            price=copy.deepcopy(self._prices[item.price]),
            quantity=item.quantity,
            subscription=subscription_id,
            tax_rates=[],
        )
        if item.quantity is None:
            del obj["quantity"]  # metered items carry no quantity
        if self.basil:
            obj["discounts"] = []
        return obj

    def _mirror_single_item(self, sub: Json) -> None:
        # The old layout repeats a single-item subscription's plan and quantity at the top.
        if self.basil:
            return
        data = sub["items"]["data"]
        single = data[0] if len(data) == 1 else None
        sub["plan"] = copy.deepcopy(single["plan"]) if single else None
        sub["quantity"] = single.get("quantity") if single else None

    def item_id(self, subscription_id: str, price: str) -> str:
        """The id of the subscription's item on `price`."""
        for item in self._objects[subscription_id]["items"]["data"]:
            if item["price"]["id"] == price:
                found: str = item["id"]
                return found
        raise KeyError(f"{subscription_id} has no item on {price}")

    def _update_subscription(
        self,
        subscription_id: str,
        mutate: Callable[[Json], None],
        *,
        at: datetime,
        automatic: bool = False,
    ) -> Json:
        previous = self._change(subscription_id, mutate)
        sub = self._objects[subscription_id]
        return self._emit(
            "customer.subscription.updated", sub, at, previous=previous, automatic=automatic
        )

    def _apply_items(
        self, sub: Json, *, price: str | None, quantity: int | None, item: str | None
    ) -> None:
        data = sub["items"]["data"]
        target = next((i for i in data if i["id"] == item), None) if item else data[0]
        if target is None:
            raise KeyError(f"{sub['id']} has no item {item}")
        if price is not None:
            # Swapping an item's price keeps the subscription item (and its id).
            target["price"] = copy.deepcopy(self._prices[price])
            target["plan"] = copy.deepcopy(self._plans[price])
        if quantity is not None:
            target["quantity"] = quantity
        self._mirror_single_item(sub)

    def update_items(
        self,
        subscription_id: str,
        *,
        at: datetime,
        price: str | None = None,
        quantity: int | None = None,
        item: str | None = None,
    ) -> None:
        """Change an item's price and/or quantity (default: the first item). Prorations, if
        any, are billed separately with `create_invoice`."""

        def mutate(sub: Json) -> None:
            self._apply_items(sub, price=price, quantity=quantity, item=item)

        self._update_subscription(subscription_id, mutate, at=at)

    def renew(
        self,
        subscription_id: str,
        *,
        at: datetime,
        status: str | None = None,
        price: str | None = None,
        resume_collection: bool = False,
        drop_discount: bool = False,
    ) -> None:
        """Start the next billing period at `at` (a renewal, or a trial's end), in one
        `customer.subscription.updated`. Changes that Stripe makes at the same instant ride
        along: a new status, a schedule phase's price, the end of a paused collection, a
        repeating discount running out (which also sends `customer.discount.deleted`)."""
        sub = self._objects[subscription_id]
        recurring = sub["items"]["data"][0]["price"]["recurring"]
        start = unix(at)
        end = unix(add_interval(at, recurring["interval"], recurring["interval_count"]))
        state = self._subscriptions[subscription_id]
        state.previous_period = _period(sub, basil=self.basil)
        dropped = self._discount_of(subscription_id) if drop_discount else None

        def mutate(sub: Json) -> None:
            if price is not None:
                self._apply_items(sub, price=price, quantity=None, item=None)
            _set_period(sub, start, end, basil=self.basil)
            if status is not None:
                sub["status"] = status
            if resume_collection:
                sub["pause_collection"] = None
            if dropped is not None:
                self._detach_discount(sub)

        self._update_subscription(subscription_id, mutate, at=at, automatic=True)
        if dropped is not None:
            self._emit("customer.discount.deleted", dropped, at, automatic=True)
            state.discount = None

    def set_status(
        self, subscription_id: str, status: str, *, at: datetime, automatic: bool = True
    ) -> None:
        def mutate(sub: Json) -> None:
            sub["status"] = status

        self._update_subscription(subscription_id, mutate, at=at, automatic=automatic)

    def cancel_at_period_end(
        self,
        subscription_id: str,
        *,
        at: datetime,
        reason: str = "cancellation_requested",
        feedback: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Schedule the cancellation for the period's end (`cancel_at` = period end)."""

        def mutate(sub: Json) -> None:
            sub["cancel_at_period_end"] = True
            sub["cancel_at"] = _period(sub, basil=self.basil)[1]
            # Stripe sets canceled_at to the time of the request, not of the end:
            # https://docs.stripe.com/api/subscriptions/object#subscription_object-canceled_at
            sub["canceled_at"] = unix(at)
            sub["cancellation_details"] = _cancellation(reason, feedback, comment)

        self._update_subscription(subscription_id, mutate, at=at)

    def cancel(
        self,
        subscription_id: str,
        *,
        at: datetime,
        reason: str = "cancellation_requested",
        feedback: str | None = None,
        comment: str | None = None,
    ) -> None:
        """End the subscription at `at`: `customer.subscription.deleted`, `ended_at` = `at`.
        After `cancel_at_period_end` this is Stripe ending it (the request's data stay)."""
        sub = self._objects[subscription_id]
        scheduled = sub["cancel_at_period_end"] or sub["cancel_at"] is not None
        sub["status"] = "canceled"
        sub["ended_at"] = unix(at)
        if not scheduled:
            sub["canceled_at"] = unix(at)
            sub["cancellation_details"] = _cancellation(reason, feedback, comment)
        self._emit("customer.subscription.deleted", sub, at, automatic=scheduled)

    def expire_incomplete(self, subscription_id: str, *, at: datetime) -> None:
        """An `incomplete` subscription whose first invoice went unpaid becomes
        `incomplete_expired`; Stripe reports it as an update, not a deletion."""

        def mutate(sub: Json) -> None:
            sub["status"] = "incomplete_expired"
            sub["canceled_at"] = unix(at)
            sub["ended_at"] = unix(at)

        self._update_subscription(subscription_id, mutate, at=at, automatic=True)

    def pause_collection(
        self,
        subscription_id: str,
        *,
        at: datetime,
        behavior: Literal["void", "keep_as_draft", "mark_uncollectible"],
        resumes_at: datetime | None,
    ) -> None:
        def mutate(sub: Json) -> None:
            sub["pause_collection"] = {
                "behavior": behavior,
                "resumes_at": unix(resumes_at) if resumes_at is not None else None,
            }

        self._update_subscription(subscription_id, mutate, at=at)

    def resume_collection(self, subscription_id: str, *, at: datetime) -> None:
        """Clear `pause_collection` on its own (see `renew(resume_collection=True)` for the
        resume that coincides with a renewal)."""

        def mutate(sub: Json) -> None:
            sub["pause_collection"] = None

        self._update_subscription(subscription_id, mutate, at=at)

    # discounts ------------------------------------------------------------------------------

    def _new_discount(
        self, coupon_id: str, customer: str, subscription_id: str, at: datetime
    ) -> Json:
        coupon = self._coupons[coupon_id]
        end = None
        if coupon["duration"] == "repeating":
            end = unix(add_interval(at, "month", coupon["duration_in_months"]))
        discount = resource("discount")
        for key in ("source", "customer_account"):
            # The coupon moved under `source` only in 2025-09-30.clover; both layouts here
            # embed it at `coupon`.
            discount.pop(key, None)
        discount.update(
            id=self.new_id("di"),
            checkout_session=None,
            coupon=copy.deepcopy(coupon),
            customer=customer,
            end=end,
            invoice=None,
            invoice_item=None,
            promotion_code=None,
            start=unix(at),
            subscription=subscription_id,
            subscription_item=None,
        )
        self._objects[discount["id"]] = discount
        self._subscriptions[subscription_id].discount = discount["id"]
        self._subscriptions[subscription_id].discounted_invoices = 0
        return discount

    def _attach_discount(self, sub: Json, discount: Json) -> None:
        # Old layout: one embedded `discount`; basil: `discounts`, ids only.
        if self.basil:
            sub["discounts"] = [discount["id"]]
        else:
            sub["discount"] = copy.deepcopy(discount)

    def _detach_discount(self, sub: Json) -> None:
        if self.basil:
            sub["discounts"] = []
        else:
            sub["discount"] = None

    def _discount_of(self, subscription_id: str) -> Json | None:
        found = self._subscriptions[subscription_id].discount
        return self._objects[found] if found else None

    def add_discount(self, subscription_id: str, coupon_id: str, *, at: datetime) -> str:
        """Apply a coupon to a subscription: `customer.discount.created`, then the update."""
        sub = self._objects[subscription_id]
        discount = self._new_discount(coupon_id, sub["customer"], subscription_id, at)
        self._emit("customer.discount.created", discount, at)

        def mutate(sub: Json) -> None:
            self._attach_discount(sub, discount)

        self._update_subscription(subscription_id, mutate, at=at)
        discount_id: str = discount["id"]
        return discount_id

    def remove_discount(self, subscription_id: str, *, at: datetime) -> None:
        """Remove the subscription's discount: the update, then `customer.discount.deleted`."""
        discount = self._discount_of(subscription_id)
        if discount is None:
            raise ValueError(f"{subscription_id} has no discount")
        self._update_subscription(subscription_id, self._detach_discount, at=at)
        self._emit("customer.discount.deleted", discount, at)
        self._subscriptions[subscription_id].discount = None

    # schedules ------------------------------------------------------------------------------

    def create_schedule(
        self,
        subscription_id: str,
        phases: Sequence[Phase],
        *,
        at: datetime,
        end_behavior: Literal["release", "cancel"] = "release",
    ) -> str:
        """Put a subscription on a schedule: `subscription_schedule.created`, then the
        subscription's update naming its `schedule`."""
        sub = self._objects[subscription_id]
        if self.basil:
            schedule = resource("subscription_schedule")
            schedule.pop("customer_account", None)
            template = schedule["phases"][0]
            template["transfer_data"] = None
            schedule["default_settings"]["transfer_data"] = None
        else:
            schedule = object_2020("subscription_schedule_created")
            template = schedule["phases"][0]
        phase_json = []
        for phase in phases:
            entry = copy.deepcopy(template)
            entry.update(
                start_date=unix(phase.start),
                end_date=unix(phase.end) if phase.end is not None else None,
                items=[self._phase_item(item) for item in phase.items],
                trial_end=None,
            )
            if self.basil:
                entry["discounts"] = []
            else:
                entry["coupon"] = None
            phase_json.append(entry)
        schedule.update(
            id=self.new_id("sub_sched"),
            canceled_at=None,
            completed_at=None,
            created=unix(at),
            customer=sub["customer"],
            end_behavior=end_behavior,
            livemode=False,
            metadata={},
            phases=phase_json,
            released_at=None,
            released_subscription=None,
            status="active",
            subscription=subscription_id,
            test_clock=None,
        )
        schedule["current_phase"] = _current_phase(phase_json, unix(at))
        self._objects[schedule["id"]] = schedule
        self._emit("subscription_schedule.created", schedule, at)
        schedule_id: str = schedule["id"]

        def mutate(sub: Json) -> None:
            sub["schedule"] = schedule_id

        self._update_subscription(subscription_id, mutate, at=at)
        return schedule_id

    def _phase_item(self, item: Item) -> Json:
        entry: Json = {
            "billing_thresholds": None,
            "metadata": {},
            "price": item.price,
            "quantity": item.quantity,
            "tax_rates": [],
        }
        if self.basil:
            entry["discounts"] = []
        return entry

    def advance_schedule(self, schedule_id: str, *, at: datetime) -> None:
        """The next phase starts: `subscription_schedule.updated` with its `current_phase`."""

        def mutate(schedule: Json) -> None:
            schedule["current_phase"] = _current_phase(schedule["phases"], unix(at))

        previous = self._change(schedule_id, mutate)
        self._emit(
            "subscription_schedule.updated",
            self._objects[schedule_id],
            at,
            previous=previous,
            automatic=True,
        )

    # invoices -------------------------------------------------------------------------------

    def subscription_lines(
        self, subscription_id: str, *, usage: Mapping[str, int] | None = None
    ) -> list[Line]:
        """The lines of the subscription's invoice for its current period: licensed items in
        advance; metered items for `usage` (item id -> quantity) over the previous period,
        in arrears (or 0 units over the current period on a first invoice)."""
        sub = self._objects[subscription_id]
        start, end = _period(sub, basil=self.basil)
        previous = self._subscriptions[subscription_id].previous_period
        lines = []
        for item in sub["items"]["data"]:
            price = item["price"]
            name = price["nickname"] or price["id"]
            interval = price["recurring"]["interval"]
            if price["recurring"]["usage_type"] == "metered":
                quantity = (usage or {}).get(item["id"], 0)
                period = previous or (start, end)
            else:
                quantity = item["quantity"]
                period = (start, end)
            amount = item_amount(price, quantity)
            lines.append(
                Line(
                    description=f"{quantity} \N{MULTIPLICATION SIGN} {name} (per {interval})",
                    amount=decimal_text(Decimal(amount) / 100),
                    price=price["id"],
                    quantity=quantity,
                    subscription_item=item["id"],
                    period=(_time(period[0]), _time(period[1])),
                )
            )
        return lines

    def create_invoice(
        self,
        customer: str,
        lines: Sequence[Line],
        *,
        at: datetime,
        subscription: str | None = None,
        billing_reason: str = "manual",
        collection_method: Literal["charge_automatically", "send_invoice"] = "charge_automatically",
        tax_rate: str | None = None,
    ) -> str:
        """A draft invoice: `invoice.created`. `tax_rate` is a percentage ("20") applied to
        every line by its price's tax behaviour; a subscription's discount applies while in
        force (once: first invoice only; repeating: until its `end`)."""
        invoice_id = self.new_id("in")
        self._invoices[invoice_id] = _InvoiceState()
        currency = next(
            (self._prices[line.price]["currency"] for line in lines if line.price in self._prices),
            self._customer_currency.get(customer, CURRENCY),
        )
        discount = self._invoice_discount(subscription, at) if subscription else None
        amounts = [cents(line.amount) for line in lines]
        shares = _discount_shares(discount, amounts)
        rate_id = self._tax_rate_id(tax_rate) if tax_rate is not None else None
        line_json = []
        exclusive_tax = inclusive_tax = 0
        tax_entries: list[Json] = []
        for line, amount, share in zip(lines, amounts, shares, strict=True):
            price = self._prices.get(line.price or "")
            inclusive = price is not None and price["tax_behavior"] == "inclusive"
            tax = 0
            if tax_rate is not None:
                rate = Decimal(tax_rate) / 100
                tax = half_even(
                    Decimal(amount) * rate / (1 + rate)
                    if inclusive
                    else Decimal(amount - share) * rate
                )
                if inclusive:
                    inclusive_tax += tax
                else:
                    exclusive_tax += tax
            tax_entry = (
                self._tax_entry(tax, amount - share, inclusive, rate_id) if rate_id else None
            )
            if tax_entry is not None:
                tax_entries.append(tax_entry)
            line_json.append(
                self._line_json(
                    line,
                    amount=amount,
                    invoice_id=invoice_id,
                    subscription=subscription,
                    discount=(discount["id"], share) if discount is not None and share else None,
                    tax=tax_entry,
                    at=at,
                    currency=currency,
                )
            )
        subtotal = sum(amounts)
        discounted = sum(shares)
        total = subtotal - discounted + exclusive_tax
        invoice = self._invoice_json(
            invoice_id,
            customer=customer,
            subscription=subscription,
            at=at,
            billing_reason=billing_reason,
            collection_method=collection_method,
            lines=line_json,
            currency=currency,
        )
        tax_total = exclusive_tax + inclusive_tax
        invoice.update(
            subtotal=subtotal,
            total=total,
            amount_due=max(total, 0),
            amount_paid=0,
            amount_remaining=max(total, 0),
            total_discount_amounts=(
                [{"amount": discounted, "discount": discount["id"]}]
                if discount is not None and discounted
                else []
            ),
        )
        if discount is not None:
            if self.basil:
                invoice["discounts"] = [discount["id"]]
            else:
                invoice["discount"] = copy.deepcopy(discount)
                invoice["discounts"] = [discount["id"]]
            self._subscriptions[subscription or ""].discounted_invoices += 1
        if self.basil:
            invoice["total_taxes"] = _merge_taxes(tax_entries)
            invoice["total_excluding_tax"] = total - tax_total
            invoice["subtotal_excluding_tax"] = subtotal - inclusive_tax
        else:
            invoice["tax"] = tax_total if tax_entries else None
            invoice["total_tax_amounts"] = _merge_taxes(tax_entries)
        self._objects[invoice_id] = invoice
        if subscription is not None:
            self._objects[subscription]["latest_invoice"] = invoice_id
        self._emit("invoice.created", invoice, at, automatic=_automatic(invoice))
        return invoice_id

    def _invoice_discount(self, subscription_id: str, at: datetime) -> Json | None:
        discount = self._discount_of(subscription_id)
        if discount is None:
            return None
        duration = discount["coupon"]["duration"]
        state = self._subscriptions[subscription_id]
        if duration == "once" and state.discounted_invoices > 0:
            return None
        if duration == "repeating" and discount["end"] is not None and unix(at) >= discount["end"]:
            return None
        return discount

    def _tax_rate_id(self, rate: str) -> str:
        return f"txr_{hashlib.sha256(rate.encode()).hexdigest()[:24]}"

    def _tax_entry(self, tax: int, taxable: int, inclusive: bool, rate_id: str) -> Json:
        if self.basil:
            return {
                "amount": tax,
                "tax_behavior": "inclusive" if inclusive else "exclusive",
                "tax_rate_details": {"tax_rate": rate_id},
                "taxability_reason": "standard_rated",
                "taxable_amount": taxable - tax if inclusive else taxable,
                "type": "tax_rate_details",
            }
        return {"amount": tax, "inclusive": inclusive, "tax_rate": rate_id}

    def _line_json(
        self,
        line: Line,
        *,
        amount: int,
        invoice_id: str,
        subscription: str | None,
        discount: tuple[str, int] | None,
        tax: Json | None,
        at: datetime,
        currency: str,
    ) -> Json:
        price = self._prices.get(line.price or "")
        on_item = line.subscription_item is not None
        # Prorations are invoice items Stripe makes for a subscription item.
        invoice_item = self.new_id("ii") if (not on_item or line.proration) else None
        start, end = line.period or (at, at)
        common: Json = {
            "id": self.new_id("il"),
            "object": "line_item",
            "amount": amount,
            "currency": currency,
            "description": line.description,
            "discount_amounts": (
                [{"amount": discount[1], "discount": discount[0]}] if discount else []
            ),
            "discountable": amount > 0,
            "discounts": [discount[0]] if discount else [],
            "livemode": False,
            "metadata": {},
            "period": {"start": unix(start), "end": unix(end)},
            "quantity": line.quantity,
        }
        if self.basil:
            obj = resource("line_item")
            obj.pop("subtotal", None)  # a placeholder in the fixture, not a basil field
            obj.update(common)
            unit = minor(line.amount) / line.quantity if line.quantity else None
            tiered = price is not None and price["billing_scheme"] == "tiered"
            obj.update(
                invoice=invoice_id,
                subscription=subscription,
                pretax_credit_amounts=[],
                quantity_decimal=None,
                taxes=[tax] if tax else [],
                parent=_line_parent(line, subscription, invoice_item),
                pricing={
                    "price_details": {"price": line.price, "product": price["product"]}
                    if price is not None
                    else None,
                    "type": "price_details",
                    "unit_amount_decimal": (
                        decimal_text(unit) if unit is not None and not tiered else None
                    ),
                },
            )
            return obj
        old: Json = object_2020("invoice_paid")["lines"]["data"][0]
        old.update(common)
        # Old layout: a proration is an `invoiceitem` line that still names its item.
        old.update(
            invoice_item=invoice_item,
            plan=copy.deepcopy(self._plans.get(line.price or "")),
            price=copy.deepcopy(price),
            proration=line.proration,
            subscription=subscription,
            subscription_item=line.subscription_item,
            tax_amounts=[tax] if tax else [],
            tax_rates=[],
            type="subscription" if on_item and not line.proration else "invoiceitem",
        )
        return old

    def _invoice_json(
        self,
        invoice_id: str,
        *,
        customer: str,
        subscription: str | None,
        at: datetime,
        billing_reason: str,
        collection_method: str,
        lines: list[Json],
        currency: str,
    ) -> Json:
        created = unix(at)
        period = created, created
        if subscription is not None and billing_reason == "subscription_cycle":
            # An invoice's own period is the one its pending items accrued in: the last one.
            period = self._subscriptions[subscription].previous_period or period
        if self.basil:
            invoice = resource("invoice")
            for key in ("subscription", "customer_account"):
                invoice.pop(key, None)  # gone in basil, and added after it
            invoice["automatic_tax"].update(liability=None)
            invoice.update(
                amount_overpaid=0,
                amount_shipping=0,
                automatically_finalizes_at=None,
                effective_at=None,
                from_invoice=None,
                issuer={"type": "self"},
                last_finalization_error=None,
                latest_revision=None,
                parent=(
                    {
                        "quote_details": None,
                        "subscription_details": {"metadata": {}, "subscription": subscription},
                        "type": "subscription_details",
                    }
                    if subscription is not None
                    else None
                ),
                shipping_cost=None,
                shipping_details=None,
                test_clock=None,
                total_pretax_credit_amounts=[],
            )
        else:
            invoice = object_2020("invoice_paid")
            invoice.update(
                charge=None,
                discount=None,
                paid=False,
                paid_out_of_band=False,
                payment_intent=None,
                quote=None,
                subscription=subscription,
                tax_percent=None,
            )
        owner = self._objects[customer]
        invoice.update(
            id=invoice_id,
            object="invoice",
            account_country="US",
            account_name="Stripe Ledger Test Co",
            attempt_count=0,
            attempted=False,
            auto_advance=True,
            billing_reason=billing_reason,
            collection_method=collection_method,
            created=created,
            currency=currency,
            custom_fields=None,
            customer=customer,
            customer_email=owner["email"],
            customer_name=owner["name"],
            description=None,
            discounts=[],
            due_date=(
                unix(add_interval(at, "day", 30)) if collection_method == "send_invoice" else None
            ),
            ending_balance=None,
            hosted_invoice_url=None,
            invoice_pdf=None,
            lines=_list(lines, f"/v1/invoices/{invoice_id}/lines"),
            livemode=False,
            metadata={},
            next_payment_attempt=None,
            number=None,
            period_start=period[0],
            period_end=period[1],
            starting_balance=0,
            status="draft",
            status_transitions={
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            webhooks_delivered_at=None,
        )
        return invoice

    def _invoice_event(
        self, invoice_id: str, at: datetime, mutate: Callable[[Json], None], *types: str
    ) -> None:
        """One change to an invoice, told by `invoice.updated` and its specific events (all in
        the same second, as Stripe sends them)."""
        previous = self._change(invoice_id, mutate)
        invoice = self._objects[invoice_id]
        automatic = _automatic(invoice)
        for event_type in types:
            self._emit(event_type, invoice, at, previous=previous, automatic=automatic)

    def finalize_invoice(self, invoice_id: str, *, at: datetime) -> None:
        """draft -> open: `invoice.finalized`."""
        customer = self._objects[self._objects[invoice_id]["customer"]]
        sequence = self._invoice_numbers.get(customer["id"], 0) + 1
        self._invoice_numbers[customer["id"]] = sequence

        def mutate(invoice: Json) -> None:
            invoice["status"] = "open"
            invoice["status_transitions"]["finalized_at"] = unix(at)
            invoice["number"] = f"{customer['invoice_prefix']}-{sequence:04d}"
            url = f"https://invoice.stripe.com/i/acct_test/test_{invoice_id}"
            invoice["hosted_invoice_url"] = url
            invoice["invoice_pdf"] = f"{url}/pdf"
            invoice["ending_balance"] = 0
            invoice["webhooks_delivered_at"] = invoice["created"]
            if invoice["collection_method"] == "charge_automatically" and invoice["amount_due"]:
                invoice["next_payment_attempt"] = unix(at)
            if self.basil:
                invoice["effective_at"] = unix(at)

        self._invoice_event(invoice_id, at, mutate, "invoice.finalized")

    def _payment_intent(self, invoice_id: str) -> str:
        state = self._invoices[invoice_id]
        if state.payment_intent is None:
            state.payment_intent = self.new_id("pi")
        return state.payment_intent

    def pay_invoice(self, invoice_id: str, *, at: datetime) -> str | None:
        """open -> paid. A non-zero invoice is charged: `charge.succeeded` (plus its balance
        transaction snapshot), in basil `invoice_payment.paid`; then `invoice.updated`,
        `invoice.paid`, `invoice.payment_succeeded`. Returns the charge id (None for 0.00)."""
        invoice = self._objects[invoice_id]
        amount = invoice["amount_due"]
        charge_id = None
        if amount > 0:
            charge_id = self._charge(invoice_id, amount, at, succeeded=True)
            if self.basil:
                self._invoice_payment(invoice_id, amount, at)

        def mutate(invoice: Json) -> None:
            invoice["status"] = "paid"
            invoice["amount_paid"] = amount
            invoice["amount_remaining"] = 0
            invoice["attempted"] = True
            invoice["attempt_count"] += 1 if amount > 0 else 0
            invoice["next_payment_attempt"] = None
            invoice["status_transitions"]["paid_at"] = unix(at)
            if not self.basil:
                invoice["paid"] = True
                invoice["charge"] = charge_id
                invoice["payment_intent"] = self._invoices[invoice_id].payment_intent

        self._invoice_event(
            invoice_id, at, mutate, "invoice.updated", "invoice.paid", "invoice.payment_succeeded"
        )
        return charge_id

    def fail_invoice_payment(self, invoice_id: str, *, at: datetime) -> str:
        """A declined attempt: `charge.failed`, `invoice.updated`, `invoice.payment_failed`;
        the invoice stays open with a retry scheduled. Returns the failed charge's id."""
        amount = self._objects[invoice_id]["amount_due"]
        charge_id = self._charge(invoice_id, amount, at, succeeded=False)

        def mutate(invoice: Json) -> None:
            invoice["attempted"] = True
            invoice["attempt_count"] += 1
            invoice["next_payment_attempt"] = unix(add_interval(at, "day", 3))
            if not self.basil:
                invoice["charge"] = charge_id
                invoice["payment_intent"] = self._invoices[invoice_id].payment_intent

        self._invoice_event(invoice_id, at, mutate, "invoice.updated", "invoice.payment_failed")
        return charge_id

    def void_invoice(self, invoice_id: str, *, at: datetime) -> None:
        """-> void: `invoice.updated`, `invoice.voided`. A draft may be voided here too: with
        `pause_collection.behavior = void` Stripe voids renewal invoices without collecting."""

        def mutate(invoice: Json) -> None:
            invoice["status"] = "void"
            invoice["status_transitions"]["voided_at"] = unix(at)
            invoice["next_payment_attempt"] = None

        self._invoice_event(invoice_id, at, mutate, "invoice.updated", "invoice.voided")

    def mark_uncollectible(self, invoice_id: str, *, at: datetime) -> None:
        def mutate(invoice: Json) -> None:
            invoice["status"] = "uncollectible"
            invoice["status_transitions"]["marked_uncollectible_at"] = unix(at)
            invoice["next_payment_attempt"] = None

        self._invoice_event(
            invoice_id, at, mutate, "invoice.updated", "invoice.marked_uncollectible"
        )

    def bill(
        self,
        subscription_id: str,
        *,
        at: datetime,
        billing_reason: str = "subscription_cycle",
        outcome: Literal["paid", "failed", "open", "void", "draft"] = "paid",
        settle_at: datetime | None = None,
        usage: Mapping[str, int] | None = None,
        extra_lines: Sequence[Line] = (),
        lines: Sequence[Line] | None = None,
        tax_rate: str | None = None,
    ) -> str:
        """Invoice the subscription's current period: a draft at `at`, then at `settle_at`
        (default `at`; Stripe leaves renewal drafts open for about an hour) finalized and
        paid, failed or left open; or voided without finalizing; or left a draft."""
        sub = self._objects[subscription_id]
        base = self.subscription_lines(subscription_id, usage=usage) if lines is None else lines
        invoice_id = self.create_invoice(
            sub["customer"],
            [*base, *extra_lines],
            at=at,
            subscription=subscription_id,
            billing_reason=billing_reason,
            tax_rate=tax_rate,
        )
        when = settle_at or at
        if outcome == "draft":
            return invoice_id
        if outcome == "void":
            self.void_invoice(invoice_id, at=when)
            return invoice_id
        self.finalize_invoice(invoice_id, at=when)
        if outcome == "paid":
            self.pay_invoice(invoice_id, at=when)
        elif outcome == "failed":
            self.fail_invoice_payment(invoice_id, at=when)
        return invoice_id

    # cash -----------------------------------------------------------------------------------

    def _charge(self, invoice_id: str, amount: int, at: datetime, *, succeeded: bool) -> str:
        invoice = self._objects[invoice_id]
        customer = invoice["customer"]
        charge_id = self.new_id("ch")
        txn_id = self.new_id("txn") if succeeded else None
        if self.basil:
            charge = resource("charge")
            charge.pop("refunds", None)  # not included since 2022-11-15 unless expanded
            charge.update(source=None, transfer_data=None)
        else:
            charge = object_2020("charge_succeeded")
            charge["refunds"] = _list([], f"/v1/charges/{charge_id}/refunds")
            charge["invoice"] = invoice_id
        if succeeded:
            outcome = {
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "normal",
                "seller_message": "Payment complete.",
                "type": "authorized",
            }
        else:
            outcome = {
                "network_status": "declined_by_network",
                "reason": "generic_decline",
                "risk_level": "normal",
                "seller_message": "The bank did not return any further details with this decline.",
                "type": "issuer_declined",
            }
        charge.update(
            id=charge_id,
            amount=amount,
            amount_captured=amount if succeeded else 0,
            amount_refunded=0,
            application=None,
            application_fee=None,
            application_fee_amount=None,
            balance_transaction=txn_id,
            captured=succeeded,
            created=unix(at),
            currency=invoice["currency"],
            customer=customer,
            description=_charge_description(invoice["billing_reason"]),
            disputed=False,
            failure_code=None if succeeded else "card_declined",
            failure_message=None if succeeded else "Your card was declined.",
            livemode=False,
            metadata={},
            outcome=outcome,
            paid=succeeded,
            payment_intent=self._payment_intent(invoice_id),
            payment_method=f"pm_{customer.removeprefix('cus_')}",
            receipt_url=f"https://pay.stripe.com/receipts/acct_test/{charge_id}/rcpt_test",
            refunded=False,
            status="succeeded" if succeeded else "failed",
        )
        self._objects[charge_id] = charge
        self._invoices[invoice_id].charges.append(charge_id)
        self._emit(
            "charge.succeeded" if succeeded else "charge.failed",
            charge,
            at,
            automatic=_automatic(invoice),
        )
        if txn_id is not None:
            fee = card_fee(amount)
            txn = self._balance_transaction(
                txn_id, amount, fee, charge_id, "charge", at, invoice["currency"]
            )
            self._snapshot(txn, at)
        return charge_id

    def _balance_transaction(
        self,
        txn_id: str,
        amount: int,
        fee: int,
        source: str,
        kind: str,
        at: datetime,
        currency: str,
    ) -> Json:
        # Settled in the charge's currency, as on an account with a bank account for each.
        txn = resource("balance_transaction")
        txn.update(
            id=txn_id,
            amount=amount,
            available_on=unix(add_interval(at, "day", 2)),
            created=unix(at),
            currency=currency,
            description="Payment" if kind == "charge" else "REFUND FOR CHARGE",
            exchange_rate=None,
            fee=fee,
            fee_details=(
                [
                    {
                        "amount": fee,
                        "application": None,
                        "currency": currency,
                        "description": "Stripe processing fees",
                        "type": "stripe_fee",
                    }
                ]
                if fee
                else []
            ),
            net=amount - fee,
            reporting_category=kind,
            source=source,
            status="available",
            type=kind,
        )
        return txn

    def _invoice_payment(self, invoice_id: str, amount: int, at: datetime) -> None:
        payment = resource("invoice_payment")
        payment.update(
            id=self.new_id("inpay"),
            amount_paid=amount,
            amount_requested=amount,
            created=unix(at),
            currency=self._objects[invoice_id]["currency"],
            invoice=invoice_id,
            is_default=True,
            livemode=False,
            payment={"type": "payment_intent", "payment_intent": self._payment_intent(invoice_id)},
            status="paid",
            status_transitions={"canceled_at": None, "paid_at": unix(at)},
        )
        self._objects[payment["id"]] = payment
        self._emit("invoice_payment.paid", payment, at, automatic=True)

    def charges_of(self, invoice_id: str) -> list[str]:
        """Every charge attempted for an invoice, failed ones included, oldest first."""
        return list(self._invoices[invoice_id].charges)

    def refund(
        self,
        charge_id: str,
        *,
        at: datetime,
        amount: str | None = None,
        reason: str = "requested_by_customer",
    ) -> str:
        """Refund a charge (fully by default): `refund.created`, then `charge.refunded`, and a
        snapshot of the refund's balance transaction (no fee comes back)."""
        charge = self._objects[charge_id]
        value = (
            cents(amount) if amount is not None else charge["amount"] - charge["amount_refunded"]
        )
        refund_id = self.new_id("re")
        txn_id = self.new_id("txn")
        if self.basil:
            refund = resource("refund")
            for key in ("customer", "customer_account", "payment_method"):
                refund.pop(key, None)  # refunds name these only from 2026-07-29.dahlia
        else:
            refund = object_2020("refund_created")
        refund.update(
            id=refund_id,
            amount=value,
            balance_transaction=txn_id,
            charge=charge_id,
            created=unix(at),
            currency=charge["currency"],
            metadata={},
            payment_intent=charge["payment_intent"],
            reason=reason,
            status="succeeded",
        )
        self._objects[refund_id] = refund
        self._emit("refund.created", refund, at)

        def mutate(charge: Json) -> None:
            charge["amount_refunded"] += value
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            if not self.basil:
                charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
                charge["refunds"]["total_count"] += 1

        previous = self._change(charge_id, mutate)
        self._emit("charge.refunded", self._objects[charge_id], at, previous=previous)
        txn = self._balance_transaction(
            txn_id, -value, 0, refund_id, "refund", at, charge["currency"]
        )
        self._snapshot(txn, at)
        return refund_id


# --- helpers ---------------------------------------------------------------------------------


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _list(data: list[Json], url: str) -> Json:
    return {"object": "list", "data": data, "has_more": False, "total_count": len(data), "url": url}


def _invoice_prefix(customer_id: str) -> str:
    return hashlib.sha256(customer_id.encode()).hexdigest()[:8].upper()


def _tier_json(tier: Tier) -> Json:
    unit = minor(tier.unit_amount)
    flat = minor(tier.flat_amount) if tier.flat_amount is not None else None
    return {
        "flat_amount": int(flat) if flat is not None else None,
        "flat_amount_decimal": decimal_text(flat) if flat is not None else None,
        "unit_amount": int(unit) if unit == unit.to_integral_value() else None,
        "unit_amount_decimal": decimal_text(unit),
        "up_to": tier.up_to,
    }


def item_amount(price: Mapping[str, Any], quantity: int) -> int:
    """What one billing period of `quantity` units costs, in cents (before discounts)."""
    if price["billing_scheme"] != "tiered":
        return half_even(Decimal(price["unit_amount_decimal"]) * quantity)
    tiers = price["tiers"]
    total = Decimal(0)
    if price["tiers_mode"] == "volume":
        for tier in tiers:
            if tier["up_to"] is None or quantity <= tier["up_to"]:
                flat = Decimal(tier["flat_amount_decimal"] or 0)
                return half_even(Decimal(tier["unit_amount_decimal"]) * quantity + flat)
    below = 0
    for tier in tiers:
        top = quantity if tier["up_to"] is None else min(quantity, tier["up_to"])
        if top > below:
            total += Decimal(tier["unit_amount_decimal"]) * (top - below)
            total += Decimal(tier["flat_amount_decimal"] or 0)
        below = top
    return half_even(total)


def _period(sub: Json, *, basil: bool) -> tuple[int, int]:
    holder = sub["items"]["data"][0] if basil else sub
    return holder["current_period_start"], holder["current_period_end"]


def _set_period(sub: Json, start: int, end: int, *, basil: bool) -> None:
    # Basil moved the billing period from the subscription onto each item.
    if basil:
        for item in sub["items"]["data"]:
            item["current_period_start"] = start
            item["current_period_end"] = end
    else:
        sub["current_period_start"] = start
        sub["current_period_end"] = end


def _cancellation(reason: str, feedback: str | None, comment: str | None) -> Json:
    return {"comment": comment, "feedback": feedback, "reason": reason}


def _current_phase(phases: list[Json], at: int) -> Json | None:
    for phase in phases:
        end = phase["end_date"]
        if phase["start_date"] <= at and (end is None or at < end):
            return {"end_date": end, "start_date": phase["start_date"]}
    return None


def _discount_shares(discount: Json | None, amounts: list[int]) -> list[int]:
    """Each line's part of the discount: percent_off per line; amount_off shared in proportion
    to the positive lines, the rounding remainder on the last one, never below zero."""
    if discount is None:
        return [0] * len(amounts)
    coupon = discount["coupon"]
    if coupon["percent_off"] is not None:
        percent = Decimal(str(coupon["percent_off"])) / 100
        return [half_even(Decimal(a) * percent) if a > 0 else 0 for a in amounts]
    eligible = sum(a for a in amounts if a > 0)
    off = min(coupon["amount_off"], eligible)
    shares = [half_even(Decimal(off) * a / eligible) if a > 0 else 0 for a in amounts]
    positive = [i for i, a in enumerate(amounts) if a > 0]
    if positive:
        shares[positive[-1]] += off - sum(shares)
    return shares


def _merge_taxes(entries: list[Json]) -> list[Json]:
    """Invoice-level tax totals: the lines' tax entries summed per rate and behaviour."""
    merged: dict[tuple[str, ...], Json] = {}
    for entry in entries:
        key = tuple(
            str(v) for k, v in sorted(entry.items()) if k not in ("amount", "taxable_amount")
        )
        if key in merged:
            merged[key]["amount"] += entry["amount"]
            if "taxable_amount" in entry:
                merged[key]["taxable_amount"] += entry["taxable_amount"]
        else:
            merged[key] = copy.deepcopy(entry)
    return list(merged.values())


def _line_parent(line: Line, subscription: str | None, invoice_item: str | None) -> Json:
    if line.subscription_item is not None:
        return {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": invoice_item,
                "proration": line.proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": line.subscription_item,
            },
            "type": "subscription_item_details",
        }
    return {
        "invoice_item_details": {
            "invoice_item": invoice_item,
            "proration": False,
            "proration_details": {"credited_items": None},
            "subscription": subscription,
        },
        "subscription_item_details": None,
        "type": "invoice_item_details",
    }


def _automatic(invoice: Json) -> bool:
    # Renewal invoices (and their payments and retries) are Stripe's own doing: no request.
    return bool(invoice["billing_reason"] == "subscription_cycle")


def _charge_description(billing_reason: str) -> str | None:
    return {
        "subscription_create": "Subscription creation",
        "subscription_cycle": "Subscription update",
        "subscription_update": "Subscription update",
    }.get(billing_reason)
