"""Small total readers over parsed Stripe JSON: a missing key or a wrong type gives None.

Every other module here goes through these, so no reader can raise KeyError.
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
    """A Stripe object cannot be read: no `id`, a malformed decimal, an unknown enum value."""


def from_unix(value: int | None) -> datetime | None:
    """Stripe's unix seconds as an aware UTC datetime; None stays None."""
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def ref_id(value: object) -> str | None:
    """The id of an expandable reference: an id string, or an expanded object carrying `id`.

    Stripe returns most references as ids unless the caller asked for `expand[]`
    (https://docs.stripe.com/expand), so every reference must accept both forms.
    """
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) and found else None
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


def flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def time(value: object) -> datetime | None:
    return from_unix(integer(value))


def exact(value: object, *, field: str) -> Fraction | None:
    """A decimal string (or JSON number) as an exact Fraction, via Decimal(str), never float.

    JSON numbers such as `percent_off: 25.5` arrive as floats; their shortest repr is
    the decimal Stripe sent, so Decimal(str(x)) recovers it exactly.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float | str | Decimal):
        try:
            return Fraction(Decimal(str(value)))
        except (InvalidOperation, ValueError, OverflowError) as exc:
            raise StripeShapeError(f"{field}: {value!r} is not a finite decimal") from exc
    return None


def required_id(obj: StripeJson, kind: str) -> str:
    found = ref_id(obj)
    if found is None:
        raise StripeShapeError(f"{kind} object has no id")
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
