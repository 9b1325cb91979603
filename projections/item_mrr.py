"""MRR of subscription items, exactly as METRICS.md defines it (section "Item MRR").

Pure functions over Fractions of minor units: gross per billing period from the price
(per-unit, volume or graduated tiers, transform_quantity), discounts (item-level, then
subscription-level), tax removed from tax-inclusive prices, then normalised to a month.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from projections.stripe_fields import Coupon, Price

# Annualise, then divide by 12, so ARR = 12 x MRR exactly.
_MONTHS_PER_INTERVAL = {
    "month": Fraction(1),
    "year": Fraction(1, 12),
    "week": Fraction(52, 12),
    "day": Fraction(365, 12),
}


def monthly_factor(interval: str | None, interval_count: int) -> Fraction:
    """The factor turning one billing period's amount into a month's."""
    if interval is None:  # a one-time price recurs never
        return Fraction(0)
    return _MONTHS_PER_INTERVAL[interval] / max(interval_count, 1)


def billable_quantity(price: Price, quantity: int | None) -> int:
    q = quantity if quantity is not None else 1
    if price.transform_divide_by:
        divided = Fraction(q, price.transform_divide_by)
        return math.floor(divided) if price.transform_round == "down" else math.ceil(divided)
    return q


def gross_per_period(price: Price, quantity: int | None) -> Fraction:
    """One billing period's amount before discounts and tax; 0 for metered prices."""
    if price.usage_type == "metered":
        return Fraction(0)  # usage is cash (usage revenue), never MRR
    q = billable_quantity(price, quantity)
    if price.billing_scheme != "tiered":
        return (price.unit_amount or Fraction(0)) * q
    tiers = price.tiers
    if price.tiers_mode == "volume":
        for tier in tiers:
            if tier.up_to is None or q <= tier.up_to:
                return q * tier.unit_amount + tier.flat_amount
        return Fraction(0)
    total, below = Fraction(0), 0
    for tier in tiers:  # graduated: each tier bills the units that fall inside it
        if q <= below:
            break
        top = q if tier.up_to is None else min(q, tier.up_to)
        total += (top - below) * tier.unit_amount + tier.flat_amount
        below = top
    return total


@dataclass(frozen=True, slots=True)
class ItemInput:
    price: Price
    quantity: int | None
    coupons: tuple[Coupon, ...]  # item-level discounts in force
    tax_share: Fraction  # part of a tax-inclusive amount that is tax (0 when exclusive)


def _apply(amounts: list[Fraction], coupons: Sequence[Coupon], currency: str) -> list[Fraction]:
    for coupon in coupons:
        if coupon.percent_off is not None:
            amounts = [a * (1 - coupon.percent_off / 100) for a in amounts]
        elif coupon.amount_off is not None:
            if coupon.currency and coupon.currency.lower() != currency.lower():
                continue  # Stripe only applies an amount_off in the invoice's currency
            total = sum(amounts, Fraction(0))
            if total <= 0:
                continue
            # One amount per invoice, shared in proportion to the items' amounts.
            amounts = [a - coupon.amount_off * a / total for a in amounts]
        amounts = [max(a, Fraction(0)) for a in amounts]
    return amounts


def subscription_mrr(
    items: Sequence[ItemInput], subscription_coupons: Sequence[Coupon], currency: str
) -> Fraction:
    """Monthly recurring revenue of a subscription's items, in minor units, exact."""
    if not items:
        return Fraction(0)
    amounts = [
        _apply([gross_per_period(i.price, i.quantity)], i.coupons, currency)[0] for i in items
    ]
    recurring = [i.price.usage_type != "metered" and i.price.interval is not None for i in items]
    eligible = [a for a, r in zip(amounts, recurring, strict=True) if r]
    discounted = iter(_apply(eligible, subscription_coupons, currency))
    amounts = [next(discounted) if r else a for a, r in zip(amounts, recurring, strict=True)]
    total = Fraction(0)
    for item, amount in zip(items, amounts, strict=True):
        net = amount * (1 - item.tax_share)
        total += net * monthly_factor(item.price.interval, item.price.interval_count)
    return total


def coupon_counts(coupon: Coupon, subtract_repeating: bool, subtract_once: bool) -> bool:
    """Which coupons reduce MRR (METRICS.md, Item MRR step 4)."""
    if coupon.duration == "forever":
        return True
    if coupon.duration == "repeating":
        return subtract_repeating
    return subtract_once
