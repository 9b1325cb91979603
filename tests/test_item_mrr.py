"""Item MRR as METRICS.md defines it: prices, tiers, quantities, discounts, tax, intervals."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest

from projections.item_mrr import ItemInput, gross_per_period, monthly_factor, subscription_mrr
from projections.stripe_fields import Coupon, Price, Tier

BASE = Price(
    id="price_1",
    currency="usd",
    unit_amount=Fraction(5000),
    billing_scheme="per_unit",
    tiers_mode=None,
    tiers=(),
    interval="month",
    interval_count=1,
    usage_type="licensed",
    transform_divide_by=None,
    transform_round=None,
    tax_behavior="exclusive",
    product=None,
    nickname=None,
)
TIERS = (Tier(10, Fraction(1000), Fraction(0)), Tier(None, Fraction(800), Fraction(0)))


def coupon(**terms: object) -> Coupon:
    values: dict[str, object] = {
        "id": "co",
        "percent_off": None,
        "amount_off": None,
        "currency": "usd",
        "duration": "forever",
        "duration_in_months": None,
    }
    values.update(terms)
    return Coupon(**values)  # type: ignore[arg-type]


def item(price: Price = BASE, quantity: int | None = 1, *coupons: Coupon) -> ItemInput:
    return ItemInput(price, quantity, tuple(coupons), Fraction(0))


@pytest.mark.parametrize(
    ("interval", "count", "factor"),
    [
        ("month", 1, Fraction(1)),
        ("month", 3, Fraction(1, 3)),
        ("year", 1, Fraction(1, 12)),
        ("week", 1, Fraction(52, 12)),
        ("day", 1, Fraction(365, 12)),
        ("week", 2, Fraction(52, 24)),
    ],
)
def test_intervals_are_annualised_then_divided_by_twelve(
    interval: str, count: int, factor: Fraction
) -> None:
    assert monthly_factor(interval, count) == factor


def test_per_unit_price_times_quantity() -> None:
    assert gross_per_period(BASE, 3) == 15000


def test_graduated_tiers_bill_each_unit_in_its_tier() -> None:
    graduated = replace(BASE, billing_scheme="tiered", tiers_mode="graduated", tiers=TIERS)
    assert gross_per_period(graduated, 12) == 11600


def test_volume_tiers_bill_every_unit_at_the_tier_holding_the_quantity() -> None:
    volume = replace(BASE, billing_scheme="tiered", tiers_mode="volume", tiers=TIERS)
    assert gross_per_period(volume, 12) == 9600


def test_flat_amounts_of_used_tiers_are_added() -> None:
    tiers = (Tier(5, Fraction(100), Fraction(1000)), Tier(None, Fraction(50), Fraction(500)))
    graduated = replace(BASE, billing_scheme="tiered", tiers_mode="graduated", tiers=tiers)
    assert gross_per_period(graduated, 7) == 5 * 100 + 1000 + 2 * 50 + 500


@pytest.mark.parametrize(("rounding", "expected"), [("up", 3), ("down", 2)])
def test_transform_quantity_divides_and_rounds(rounding: str, expected: int) -> None:
    per_pack = replace(
        BASE, unit_amount=Fraction(100), transform_divide_by=4, transform_round=rounding
    )  # type: ignore[arg-type]
    assert gross_per_period(per_pack, 10) == expected * 100


def test_a_metered_price_contributes_nothing() -> None:
    metered = replace(BASE, usage_type="metered", unit_amount=Fraction(1))
    assert subscription_mrr([item(metered, None)], [], "usd") == 0


def test_percent_off_multiplies() -> None:
    assert subscription_mrr([item(BASE, 2)], [coupon(percent_off=Fraction(20))], "usd") == 8000


def test_amount_off_is_shared_across_items_in_proportion_to_their_amounts() -> None:
    small, large = (
        item(replace(BASE, unit_amount=Fraction(1000))),
        item(replace(BASE, unit_amount=Fraction(3000))),
    )
    assert subscription_mrr([small, large], [coupon(amount_off=2000)], "usd") == 2000


def test_amount_off_per_invoice_is_normalised_with_the_interval() -> None:
    yearly = replace(BASE, unit_amount=Fraction(12000), interval="year")
    assert subscription_mrr([item(yearly)], [coupon(amount_off=2400)], "usd") == 800


def test_discounts_floor_at_zero() -> None:
    assert subscription_mrr([item()], [coupon(amount_off=999_999)], "usd") == 0


def test_item_discounts_apply_before_subscription_discounts() -> None:
    discounted = item(BASE, 1, coupon(amount_off=1000))
    # (5000 - 1000) x 50% = 2000; the other order would give 1500.
    assert subscription_mrr([discounted], [coupon(percent_off=Fraction(50))], "usd") == 2000


def test_tax_is_removed_from_a_tax_inclusive_price() -> None:
    inclusive = ItemInput(
        replace(BASE, unit_amount=Fraction(12000), tax_behavior="inclusive"), 1, (), Fraction(1, 6)
    )
    assert subscription_mrr([inclusive], [], "usd") == 10000


def test_a_one_time_price_recurs_never() -> None:
    one_time = replace(BASE, interval=None)
    assert subscription_mrr([item(one_time)], [], "usd") == 0
