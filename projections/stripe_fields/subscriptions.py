"""Subscriptions, their items, and subscription schedules, in every layout we receive."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from ._read import (
    StripeJson,
    StripeShapeError,
    count,
    currency_code,
    first_of,
    flag,
    get,
    has_more,
    items,
    mapping,
    metadata,
    objects,
    ref_id,
    required_id,
    text,
    time,
)
from .discounts import Discount, discount_refs
from .prices import Price, read_price


@dataclass(frozen=True, slots=True)
class SubscriptionItem:
    id: str
    price: Price
    quantity: int | None
    discount_ids: tuple[str, ...]
    discounts: tuple[Discount, ...]
    current_period_start: datetime | None
    current_period_end: datetime | None


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    customer: str | None
    status: str | None
    currency: str | None
    livemode: bool | None
    created: datetime | None
    start_date: datetime | None
    billing_cycle_anchor: datetime | None
    trial_start: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    cancellation_reason: str | None
    cancellation_feedback: str | None
    cancellation_comment: str | None
    pause_behavior: str | None
    pause_resumes_at: datetime | None
    items: tuple[SubscriptionItem, ...]
    items_has_more: bool
    discount_ids: tuple[str, ...]
    discounts: tuple[Discount, ...]
    current_period_start: datetime | None
    current_period_end: datetime | None
    schedule: str | None
    test_clock: str | None
    metadata: Mapping[str, str] = field(hash=False)


class PhaseItem(NamedTuple):
    price_id: str | None
    quantity: int | None


@dataclass(frozen=True, slots=True)
class SchedulePhase:
    start_date: datetime | None
    end_date: datetime | None
    items: tuple[PhaseItem, ...]
    coupon_ids: tuple[str, ...]
    discount_ids: tuple[str, ...]
    trial_end: datetime | None


@dataclass(frozen=True, slots=True)
class SubscriptionSchedule:
    id: str
    subscription: str | None
    customer: str | None
    status: str | None
    end_behavior: str | None
    phases: tuple[SchedulePhase, ...]
    current_phase_start: datetime | None
    current_phase_end: datetime | None
    released_subscription: str | None
    released_at: datetime | None
    canceled_at: datetime | None
    completed_at: datetime | None


def _item_price(obj: StripeJson) -> StripeJson:
    # Payloads from before the Prices API (spring 2020) carry only `plan`; later ones carry
    # both, and `price` is the one that stays:
    # https://docs.stripe.com/billing/migration/migrating-prices
    found = mapping(obj.get("price")) or mapping(obj.get("plan"))
    if found is None:
        raise StripeShapeError(f"subscription item {ref_id(obj)!r} embeds no price or plan")
    return found


def read_subscription_item(obj: StripeJson) -> SubscriptionItem:
    """Read one subscription item; its periods exist only from 2025-03-31.basil on."""
    ids, discounts = discount_refs(items(obj.get("discounts")))
    return SubscriptionItem(
        id=required_id(obj, "subscription_item"),
        price=read_price(_item_price(obj)),
        quantity=count(obj.get("quantity"), field="quantity"),
        discount_ids=ids,
        discounts=discounts,
        current_period_start=time(obj.get("current_period_start"), field="current_period_start"),
        current_period_end=time(obj.get("current_period_end"), field="current_period_end"),
    )


def _periods(
    sub: StripeJson, found: list[SubscriptionItem]
) -> tuple[datetime | None, datetime | None, list[SubscriptionItem]]:
    """Subscription-level period and items that all carry a period.

    Basil moved the period from the subscription to each item
    (https://docs.stripe.com/changelog/basil/2025-03-31/deprecate-subscription-current-period-start-and-end).
    Old layout: copy the subscription's period onto its items. New layout: the
    subscription's period is the earliest item start and the earliest item end (the
    next renewal), since items on flexible billing may differ.
    """
    start, end = (
        time(sub.get("current_period_start"), field="current_period_start"),
        time(sub.get("current_period_end"), field="current_period_end"),
    )
    if start is not None or end is not None:
        filled = [
            dataclasses.replace(
                item,
                current_period_start=item.current_period_start or start,
                current_period_end=item.current_period_end or end,
            )
            for item in found
        ]
        return start, end, filled
    starts = [i.current_period_start for i in found if i.current_period_start is not None]
    ends = [i.current_period_end for i in found if i.current_period_end is not None]
    return min(starts, default=None), min(ends, default=None), found


def read_subscription(obj: StripeJson) -> Subscription:
    """Read a subscription in the old (`discount`, periods on the subscription) or new layout.

    Subscription-level discounts come from the single legacy `discount` object and the
    `discounts` array (ids, or objects when expanded); `discount_ids` lists every id,
    `discounts` the expanded ones
    (https://docs.stripe.com/changelog/basil/2025-03-31/deprecate-singular-coupon-promotion-code).
    """
    found = [read_subscription_item(item) for item in objects(obj.get("items"))]
    start, end, filled = _periods(obj, found)
    ids, discounts = discount_refs([obj.get("discount"), *items(obj.get("discounts"))])
    cancellation = obj.get("cancellation_details")
    pause = obj.get("pause_collection")
    return Subscription(
        id=required_id(obj, "subscription"),
        customer=ref_id(obj.get("customer")),
        status=text(obj.get("status")),
        # `currency` is a later addition (absent in e.g. 2020-03-02 payloads); every item
        # of a subscription shares its currency, so the first price's is the same fact.
        currency=currency_code(obj.get("currency"))
        or next((i.price.currency for i in found), None),
        livemode=flag(obj.get("livemode")),
        created=time(obj.get("created"), field="created"),
        start_date=time(obj.get("start_date"), field="start_date"),
        billing_cycle_anchor=time(obj.get("billing_cycle_anchor"), field="billing_cycle_anchor"),
        trial_start=time(obj.get("trial_start"), field="trial_start"),
        trial_end=time(obj.get("trial_end"), field="trial_end"),
        cancel_at_period_end=obj.get("cancel_at_period_end") is True,
        cancel_at=time(obj.get("cancel_at"), field="cancel_at"),
        canceled_at=time(obj.get("canceled_at"), field="canceled_at"),
        ended_at=time(obj.get("ended_at"), field="ended_at"),
        cancellation_reason=text(get(cancellation, "reason")),
        cancellation_feedback=text(get(cancellation, "feedback")),
        cancellation_comment=text(get(cancellation, "comment")),
        pause_behavior=text(get(pause, "behavior")),
        pause_resumes_at=time(get(pause, "resumes_at"), field="resumes_at"),
        items=tuple(filled),
        items_has_more=has_more(obj.get("items")),
        discount_ids=ids,
        discounts=discounts,
        current_period_start=start,
        current_period_end=end,
        schedule=ref_id(obj.get("schedule")),
        test_clock=ref_id(obj.get("test_clock")),
        metadata=metadata(obj.get("metadata")),
    )


def _phase(obj: StripeJson) -> SchedulePhase:
    # Phases listed `plans` before 2020-08-27 and `items` after; each names a price or plan
    # (https://docs.stripe.com/changelog/2020-08-27/renames-phases-attributes-subscription-schedules).
    entries = objects(first_of(obj.get("items"), obj.get("plans")))
    phase_items = tuple(
        PhaseItem(
            price_id=ref_id(first_of(e.get("price"), e.get("plan"))),
            quantity=count(e.get("quantity"), field="quantity"),
        )
        for e in entries
    )
    # A phase had one `coupon` until basil; now `discounts` entries name a coupon or a discount.
    coupons = [ref_id(obj.get("coupon"))]
    discount_ids: list[str] = []
    for entry in objects(obj.get("discounts")):
        coupons.append(ref_id(entry.get("coupon")))
        found = ref_id(entry.get("discount"))
        if found is not None:
            discount_ids.append(found)
    return SchedulePhase(
        start_date=time(obj.get("start_date"), field="start_date"),
        end_date=time(obj.get("end_date"), field="end_date"),
        items=phase_items,
        coupon_ids=tuple(c for c in coupons if c is not None),
        discount_ids=tuple(discount_ids),
        trial_end=time(obj.get("trial_end"), field="trial_end"),
    )


def read_subscription_schedule(obj: StripeJson) -> SubscriptionSchedule:
    current = obj.get("current_phase")
    return SubscriptionSchedule(
        id=required_id(obj, "subscription_schedule"),
        subscription=ref_id(obj.get("subscription")),
        customer=ref_id(obj.get("customer")),
        status=text(obj.get("status")),
        end_behavior=text(obj.get("end_behavior")),
        phases=tuple(_phase(phase) for phase in objects(obj.get("phases"))),
        current_phase_start=time(get(current, "start_date"), field="start_date"),
        current_phase_end=time(get(current, "end_date"), field="end_date"),
        released_subscription=ref_id(obj.get("released_subscription")),
        released_at=time(obj.get("released_at"), field="released_at"),
        canceled_at=time(obj.get("canceled_at"), field="canceled_at"),
        completed_at=time(obj.get("completed_at"), field="completed_at"),
    )
