"""Prices and legacy plans, read into one `Price` shape with exact amounts."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ._read import (
    StripeJson,
    StripeShapeError,
    count,
    currency_code,
    exact,
    get,
    integer,
    objects,
    ref_id,
    text,
)

BillingScheme = Literal["per_unit", "tiered"]
TiersMode = Literal["graduated", "volume"]
UsageType = Literal["licensed", "metered"]
RoundMode = Literal["up", "down"]
# Stripe allows a billing period of at most three years (1095 days):
# https://docs.stripe.com/api/prices/create#create_price-recurring-interval_count
_MOST_INTERVALS = 1095


@dataclass(frozen=True, slots=True)
class Tier:
    """One pricing tier; `up_to` None is Stripe's `"inf"` (the last tier, sent as null)."""

    up_to: int | None
    unit_amount: Fraction
    flat_amount: Fraction


@dataclass(frozen=True, slots=True)
class Price:
    id: str
    currency: str | None
    unit_amount: Fraction | None
    billing_scheme: BillingScheme
    tiers_mode: TiersMode | None
    tiers: tuple[Tier, ...]
    interval: str | None
    interval_count: int
    usage_type: UsageType
    transform_divide_by: int | None
    transform_round: RoundMode | None
    tax_behavior: str | None
    product: str | None
    nickname: str | None


def _billing_scheme(value: object) -> BillingScheme:
    if value is None or value == "per_unit":
        return "per_unit"
    if value == "tiered":
        return "tiered"
    raise StripeShapeError(f"unknown billing_scheme {value!r}")


def _tiers_mode(value: object) -> TiersMode | None:
    if value is None:
        return None
    if value == "graduated":
        return "graduated"
    if value == "volume":
        return "volume"
    raise StripeShapeError(f"unknown tiers_mode {value!r}")


def _usage_type(value: object) -> UsageType:
    if value is None or value == "licensed":
        return "licensed"
    if value == "metered":
        return "metered"
    raise StripeShapeError(f"unknown usage_type {value!r}")


def _round(value: object) -> RoundMode | None:
    if value is None:
        return None
    if value == "up":
        return "up"
    if value == "down":
        return "down"
    raise StripeShapeError(f"unknown transform round {value!r}")


def _amount(obj: object, decimal_key: str, int_key: str) -> Fraction | None:
    # The *_decimal string carries sub-cent prices; the integer twin is rounded or null.
    found = exact(get(obj, decimal_key), field=decimal_key)
    return found if found is not None else exact(integer(get(obj, int_key)), field=int_key)


def _tier(obj: StripeJson) -> Tier:
    return Tier(
        up_to=count(obj.get("up_to"), field="up_to"),
        unit_amount=_amount(obj, "unit_amount_decimal", "unit_amount") or Fraction(0),
        flat_amount=_amount(obj, "flat_amount_decimal", "flat_amount") or Fraction(0),
    )


def read_price(obj: StripeJson) -> Price:
    """Read a `price` object, or a legacy `plan` object (accounts from before prices, 2017-2019).

    A plan keeps its recurrence at the top level and calls the per-unit amount `amount`;
    a price nests recurrence under `recurring` and calls it `unit_amount`. Price tiers are
    only present when requested with `expand[]=tiers`
    (https://docs.stripe.com/api/prices/object#price_object-tiers); without them a tiered
    price reads with `tiers == ()`.
    """
    price_id = ref_id(obj)
    if price_id is None:
        raise StripeShapeError("price/plan object has no id")
    is_plan = obj.get("object") == "plan" or ("recurring" not in obj and "amount" in obj)
    recurrence: object = obj if is_plan else obj.get("recurring")
    transform = obj.get("transform_usage") if is_plan else obj.get("transform_quantity")
    unit = (
        _amount(obj, "amount_decimal", "amount")
        if is_plan
        else _amount(obj, "unit_amount_decimal", "unit_amount")
    )
    return Price(
        id=price_id,
        currency=currency_code(obj.get("currency")),
        unit_amount=unit,
        billing_scheme=_billing_scheme(obj.get("billing_scheme")),
        tiers_mode=_tiers_mode(obj.get("tiers_mode")),
        tiers=tuple(_tier(tier) for tier in objects(obj.get("tiers"))),
        interval=text(get(recurrence, "interval")),
        # One-time prices have no recurrence; 1 keeps the month normalisation total.
        interval_count=count(
            get(recurrence, "interval_count"), field="interval_count", most=_MOST_INTERVALS
        )
        or 1,
        usage_type=_usage_type(get(recurrence, "usage_type")),
        transform_divide_by=integer(get(transform, "divide_by")),
        transform_round=_round(get(transform, "round")),
        tax_behavior=text(obj.get("tax_behavior")),
        product=ref_id(obj.get("product")),
        # Plans from before API 2018-02-05 carry `name` instead of `nickname`
        # (https://docs.stripe.com/changelog/2018-02-05).
        nickname=text(obj.get("nickname")) or text(obj.get("name")),
    )
