"""Coupons and discounts, including where each API version keeps a discount's coupon."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Literal

from ._read import (
    StripeJson,
    StripeShapeError,
    amount,
    count,
    currency_code,
    exact,
    first_of,
    get,
    mapping,
    ref_id,
    required_id,
    time,
)

Duration = Literal["forever", "repeating", "once"]
# A repeating coupon runs for some months; a century is beyond any Stripe allows.
_MOST_MONTHS = 1200


@dataclass(frozen=True, slots=True)
class Coupon:
    id: str
    percent_off: Fraction | None
    amount_off: int | None
    currency: str | None
    duration: Duration
    duration_in_months: int | None


@dataclass(frozen=True, slots=True)
class Discount:
    """A coupon applied to a customer, subscription, item or invoice.

    `coupon_id` is always set when Stripe names the coupon; `coupon` only when it is
    expanded. `id` is None for discounts rendered before discounts had ids.
    """

    id: str | None
    coupon_id: str | None
    coupon: Coupon | None
    customer: str | None
    subscription: str | None
    subscription_item: str | None
    invoice: str | None
    invoice_item: str | None
    promotion_code: str | None
    start: datetime | None
    end: datetime | None


def _duration(value: object) -> Duration:
    if value == "forever":
        return "forever"
    if value == "repeating":
        return "repeating"
    if value == "once":
        return "once"
    raise StripeShapeError(f"unknown coupon duration {value!r}")


def read_coupon(obj: StripeJson) -> Coupon:
    return Coupon(
        id=required_id(obj, "coupon"),
        # A JSON number (25.5), read through its decimal text so 25.5 stays 51/2.
        percent_off=exact(obj.get("percent_off"), field="percent_off", low=0, high=100),
        amount_off=amount(obj.get("amount_off"), field="amount_off"),
        currency=currency_code(obj.get("currency")),
        duration=_duration(obj.get("duration")),
        duration_in_months=count(
            obj.get("duration_in_months"), field="duration_in_months", most=_MOST_MONTHS
        ),
    )


def read_discount(obj: StripeJson) -> Discount:
    """Read a discount whose coupon sits at `coupon` (to 2025-09-30) or `source.coupon` (after).

    From 2025-09-30.clover the coupon moved under `source` and is no longer
    auto-expanded, so it is usually a bare id there
    (https://docs.stripe.com/changelog/clover/2025-09-30/add-discount-source-property).
    """
    raw_coupon = first_of(obj.get("coupon"), get(obj, "source", "coupon"))
    expanded = mapping(raw_coupon)
    return Discount(
        id=ref_id(obj),
        coupon_id=ref_id(raw_coupon),
        coupon=read_coupon(expanded) if expanded is not None else None,
        customer=ref_id(obj.get("customer")),
        subscription=ref_id(obj.get("subscription")),
        subscription_item=ref_id(obj.get("subscription_item")),
        invoice=ref_id(obj.get("invoice")),
        invoice_item=ref_id(obj.get("invoice_item")),
        promotion_code=ref_id(obj.get("promotion_code")),
        start=time(obj.get("start"), field="start"),
        end=time(obj.get("end"), field="end"),
    )


def discount_refs(values: Iterable[object]) -> tuple[tuple[str, ...], tuple[Discount, ...]]:
    """Every discount id, and the expanded discounts, from a mix of ids and objects.

    `discounts` arrays hold ids unless expanded; the single legacy `discount` is an
    object. The same discount can appear in both (2020-08-27 to basil), so dedupe by id.
    """
    ids: list[str] = []
    expanded: list[Discount] = []
    seen_expanded: set[str] = set()
    for value in values:
        obj = mapping(value)
        if obj is not None and obj.get("deleted") is True:
            continue
        found = ref_id(value)
        if found is not None and found not in ids:
            ids.append(found)
        if obj is not None and (found is None or found not in seen_expanded):
            expanded.append(read_discount(obj))
            if found is not None:
                seen_expanded.add(found)
    return tuple(ids), tuple(expanded)
