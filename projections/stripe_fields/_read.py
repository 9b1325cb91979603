"""Small total readers over parsed Stripe JSON: a missing key or a wrong type gives None.

Every other module here goes through these, so no reader can raise KeyError. A value no
Stripe object can carry (a time past 2200, a 20-digit amount) raises StripeShapeError: the
event is then unreadable, logged with the field and the reason, instead of failing later.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from types import MappingProxyType
from typing import Any, TypeAlias, TypeGuard

StripeJson: TypeAlias = Mapping[str, Any]


class StripeShapeError(ValueError):
    """A Stripe object cannot be read: no `id`, a malformed decimal, an unknown enum value,
    a value outside the bounds below."""


# What a Stripe object can carry, bounded so that every value read here is one the
# derivations can compute with and the read models can store (docs/read-models.md).
# Times: Stripe sends nothing before 1970, and its furthest future times (trial ends,
# schedule phases, cancel_at) are a few years ahead; 2200 leaves centuries of room yet
# keeps month arithmetic far from datetime's year 9999 (from_unix fails past it).
EARLIEST_TIME = 0  # 1970-01-01T00:00:00Z
LATEST_TIME = 7_258_118_400  # 2200-01-01T00:00:00Z, excluded
# Amounts: Stripe accepts at most eight digits of minor units for most currencies and
# twelve for a few (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts;
# a price in IDR reaches 999,999,999,998.999999999999); twelve digits bound every amount.
MAX_AMOUNT = 10**12 - 1
# Quantities (seats, units, tier bounds): nine digits. A stored figure is then at most
# 10^21 before discounts, which can exceed a 64-bit column: the runner checks each row
# against its column too (projections/row_checks.py), so such a product quarantines one
# customer instead of failing an INSERT.
MAX_QUANTITY = 10**9 - 1
# Stripe's `*_decimal` fields carry at most 12 decimal places
# (https://docs.stripe.com/api/prices/object#price_object-unit_amount_decimal).
DECIMAL_PLACES = 12
# Every id column holds 255 characters, the most Stripe documents for an id.
MAX_ID_LENGTH = 255


def from_unix(value: int | None, *, field: str = "time") -> datetime | None:
    """Stripe's unix seconds as an aware UTC datetime; None stays None."""
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    if not EARLIEST_TIME <= value < LATEST_TIME:
        raise StripeShapeError(f"{field}: {value} is outside 1970-01-01..2199-12-31")
    return datetime.fromtimestamp(value, tz=UTC)


def ref_id(value: object) -> str | None:
    """The id of an expandable reference: an id string, or an expanded object carrying `id`.

    Stripe returns most references as ids unless the caller asked for `expand[]`
    (https://docs.stripe.com/expand), so every reference must accept both forms.
    """
    if isinstance(value, Mapping):
        value = value.get("id")
    # An id longer than any Stripe id names no object (and fits no id column).
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH:
        return value
    return None


_SCALARS = (str, int, float, list, type(None))


def is_object(value: object) -> TypeGuard[StripeJson]:
    """A JSON object. Parsed JSON is always a dict, tested first: `Mapping` is an ABC and
    its isinstance check is slow enough to show in a rebuild's profile."""
    return isinstance(value, dict) or (
        not isinstance(value, _SCALARS) and isinstance(value, Mapping)
    )


def mapping(value: object) -> StripeJson | None:
    return value if is_object(value) else None


def get(obj: object, *keys: str) -> Any:
    """Walk nested objects; None as soon as a step is missing or is not an object."""
    current: Any = obj
    for key in keys:
        if not is_object(current):
            return None
        current = current.get(key)
    return current


def text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def amount(value: object, *, field: str) -> int | None:
    """An integer amount of minor units (either sign), at most MAX_AMOUNT in size."""
    found = integer(value)
    if found is not None and abs(found) > MAX_AMOUNT:
        raise StripeShapeError(f"{field}: {found} is beyond {MAX_AMOUNT} minor units")
    return found


def count(value: object, *, field: str, most: int = MAX_QUANTITY) -> int | None:
    """A count (a quantity, a tier bound, an interval count): 0 to `most`."""
    found = integer(value)
    if found is not None and not 0 <= found <= most:
        raise StripeShapeError(f"{field}: {found} is outside 0..{most}")
    return found


def currency_code(value: object) -> str | None:
    """A three-letter ISO currency code, as Stripe writes it (lowercase); anything else
    names no currency, as if absent (API reference examples say `"currency"`)."""
    if isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha():
        return value
    return None


def flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def time(value: object, *, field: str) -> datetime | None:
    return from_unix(integer(value), field=field)


def exact(
    value: object, *, field: str, low: int = -MAX_AMOUNT, high: int = MAX_AMOUNT
) -> Fraction | None:
    """A decimal string (or JSON number) as an exact Fraction, via Decimal(str), never float,
    within [low, high] and DECIMAL_PLACES.

    JSON numbers such as `percent_off: 25.5` arrive as floats; their shortest repr is
    the decimal Stripe sent, so Decimal(str(x)) recovers it exactly. The exponent is
    checked before the Fraction is made: `"1e999999999"` would otherwise build a
    billion-digit integer.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        found = Fraction(value)
    elif isinstance(value, float | str | Decimal):
        try:
            decimal = Decimal(str(value))
        except (InvalidOperation, ValueError) as exc:
            raise StripeShapeError(f"{field}: {str(value)[:32]!r} is not a decimal") from exc
        if not decimal.is_finite():
            raise StripeShapeError(f"{field}: {str(value)[:32]!r} is not a finite decimal")
        limit = max(abs(low), abs(high))
        if decimal and not -DECIMAL_PLACES <= decimal.adjusted() <= len(str(limit)):
            raise StripeShapeError(f"{field}: {str(value)[:32]!r} is out of range")
        found = Fraction(decimal) if decimal else Fraction(0)
    else:
        return None
    if not low <= found <= high:
        raise StripeShapeError(f"{field}: {str(value)[:32]!r} is outside {low}..{high}")
    if (found * 10**DECIMAL_PLACES).denominator != 1:
        raise StripeShapeError(f"{field}: more than {DECIMAL_PLACES} decimal places")
    return found


def required_id(obj: StripeJson, kind: str) -> str:
    found = ref_id(obj)
    if found is None:
        raise StripeShapeError(f"{kind} object has no id of 1 to {MAX_ID_LENGTH} characters")
    return found


def items(value: object) -> Iterator[Any]:
    """Entries of a Stripe list object (`{"object": "list", "data": [...]}`) or a plain array."""
    data = value.get("data") if is_object(value) else value
    if isinstance(data, list):
        yield from data


def has_more(value: object) -> bool:
    return get(value, "has_more") is True


def objects(value: object) -> Iterator[StripeJson]:
    for entry in items(value):
        if is_object(entry):
            yield entry


def metadata(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        return MappingProxyType({})
    return MappingProxyType({str(k): str(v) for k, v in value.items() if v is not None})


def first_of(*values: Any) -> Any:
    """The first value that is not None (Stripe layouts put one fact at several paths)."""
    for value in values:
        if value is not None:
            return value
    return None
