"""Query parameters as Stripe reads them (`created[gte]=`, `expand[0]=`, `types[]=`, the
encoding stripe-python sends) and the list filters each endpoint accepts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from tests.support.fake_stripe.dataset import Json
from tests.support.fake_stripe.errors import invalid

Test = Callable[[Json, str], bool]

_KEY: Final = re.compile(r"([A-Za-z_]+)(?:\[([A-Za-z0-9_]*)\])?")
_RANGE_OPS: Final = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
_ARRAYS: Final = frozenset({"expand", "types"})
_RANGES: Final = frozenset({"created"})


class Query:
    """One request's parameters, split by shape: scalars (`a=`), arrays (`a[]=`, `a[0]=`)
    and ranges (`a[gte]=`)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.scalars: dict[str, str] = {}
        self.ranges: dict[str, dict[str, str]] = {}
        self._arrays: dict[str, list[tuple[int, int, str]]] = {}
        self._malformed: list[str] = []
        for position, (key, value) in enumerate(items):
            found = _KEY.fullmatch(key)
            if found is None:
                self._malformed.append(key)
                continue
            name, sub = found.groups()
            if sub is None:
                self.scalars[name] = value
            elif sub == "" or sub.isdigit():
                index = int(sub) if sub else position
                self._arrays.setdefault(name, []).append((index, position, value))
            else:
                self.ranges.setdefault(name, {})[sub] = value

    def array(self, name: str) -> list[str]:
        """An array parameter's values in index order."""
        return [value for _, _, value in sorted(self._arrays.get(name, []))]

    def check(self, allowed: set[str]) -> None:
        """Refuse what the endpoint does not take, as Stripe does: a typo in a filter must not
        silently list everything."""
        for key in self._malformed:
            raise _unknown(key)
        for name in self.scalars:
            if name not in allowed or name in _ARRAYS:
                raise _unknown(name)
        for name in self._arrays:
            if name not in allowed or name not in _ARRAYS:
                raise _unknown(f"{name}[]")
        for name, ops in self.ranges.items():
            if name not in allowed or name not in _RANGES:
                raise _unknown(f"{name}[{next(iter(ops))}]")
            for op in ops:
                if op not in _RANGE_OPS:
                    raise _unknown(f"{name}[{op}]")

    def expand(self) -> list[str]:
        return self.array("expand")

    def created(self) -> Callable[[int], bool] | None:
        """`created=<unix>` or any of `created[gt|gte|lt|lte]=<unix>`, as one test."""
        bounds: list[tuple[Callable[[int, int], bool], int]] = []
        if "created" in self.scalars:
            bounds.append((lambda a, b: a == b, _integer(self.scalars["created"], "created")))
        for op, raw in self.ranges.get("created", {}).items():
            bounds.append((_RANGE_OPS[op], _integer(raw, f"created[{op}]")))
        if not bounds:
            return None
        return lambda created: all(test(created, bound) for test, bound in bounds)


def _unknown(key: str) -> Exception:
    return invalid(f"Received unknown parameter: {key}", param=key, code="parameter_unknown")


def _integer(raw: str, param: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise invalid(
            f"Invalid integer: {raw}", param=param, code="parameter_invalid_integer"
        ) from None


def list_limit(query: Query) -> int:
    """`limit`: 1 to 100, 10 when absent (https://docs.stripe.com/api/pagination)."""
    raw = query.scalars.get("limit")
    if raw is None:
        return 10
    limit = _integer(raw, "limit")
    if limit < 1:
        raise invalid("This value must be greater than or equal to 1.", param="limit")
    if limit > 100:
        raise invalid("This value must be less than or equal to 100.", param="limit")
    return limit


# --- filters -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filter:
    test: Test
    choices: tuple[str, ...] = ()


def _field(name: str) -> Test:
    return lambda obj, value: obj.get(name) == value


def _invoice_subscription(invoice: Json, value: str) -> bool:
    # Basil moved `invoice.subscription` to `parent.subscription_details.subscription`.
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return bool(invoice.get("subscription") == value or details.get("subscription") == value)


def _subscription_price(subscription: Json, value: str) -> bool:
    return any(item["price"]["id"] == value for item in subscription["items"]["data"])


_COLLECTION: Final = ("charge_automatically", "send_invoice")
SUBSCRIPTION_STATUSES: Final = (
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "trialing",
    "paused",
)
INVOICE_STATUSES: Final = ("draft", "open", "paid", "uncollectible", "void")

# Filters applied as `test(obj, value)`; `status` of subscriptions and the event filters have
# rules of their own (below) and are listed in EXTRA_PARAMS.
FILTERS: Final[dict[str, dict[str, Filter]]] = {
    "customers": {"email": Filter(_field("email"))},
    "subscriptions": {
        "customer": Filter(_field("customer")),
        "price": Filter(_subscription_price),
        "collection_method": Filter(_field("collection_method"), _COLLECTION),
    },
    "invoices": {
        "customer": Filter(_field("customer")),
        "subscription": Filter(_invoice_subscription),
        "status": Filter(_field("status"), INVOICE_STATUSES),
        "collection_method": Filter(_field("collection_method"), _COLLECTION),
    },
    "charges": {
        "customer": Filter(_field("customer")),
        "payment_intent": Filter(_field("payment_intent")),
    },
    "refunds": {
        "charge": Filter(_field("charge")),
        "payment_intent": Filter(_field("payment_intent")),
    },
    "balance_transactions": {
        "source": Filter(_field("source")),
        "type": Filter(_field("type")),
        "currency": Filter(_field("currency")),
    },
    "invoice_payments": {"invoice": Filter(_field("invoice"))},
    "events": {},
}
EXTRA_PARAMS: Final[dict[str, frozenset[str]]] = {
    "subscriptions": frozenset({"status"}),
    "events": frozenset({"type", "types", "delivery_success"}),
}


def simple_filters(resource: str, query: Query) -> list[tuple[Test, str]]:
    """The FILTERS the query uses, each with its value (checked against its choices)."""
    found = []
    for name, value in query.scalars.items():
        known = FILTERS[resource].get(name)
        if known is None:
            continue
        if known.choices and value not in known.choices:
            raise invalid(f"Invalid {name}: must be one of {', '.join(known.choices)}", param=name)
        found.append((known.test, value))
    return found


def subscription_statuses(query: Query) -> frozenset[str]:
    """Without `status`, every subscription that has not ended: Stripe's default omits
    `canceled` and `incomplete_expired` (https://docs.stripe.com/api/subscriptions/list)."""
    status = query.scalars.get("status")
    if status is None:
        return frozenset(SUBSCRIPTION_STATUSES) - {"canceled", "incomplete_expired"}
    if status == "all":
        return frozenset(SUBSCRIPTION_STATUSES)
    if status == "ended":
        return frozenset({"canceled", "incomplete_expired"})
    if status not in SUBSCRIPTION_STATUSES:
        choices = ", ".join((*SUBSCRIPTION_STATUSES, "ended", "all"))
        raise invalid(f"Invalid status: must be one of {choices}", param="status")
    return frozenset({status})


def event_filter(query: Query) -> Callable[[Json], bool]:
    """`type` (with `*` wildcards), or `types` (up to 20 exact names), and
    `delivery_success` (read here as: no webhook delivery pending)."""
    one = query.scalars.get("type")
    many = query.array("types")
    if one is not None and many:
        raise invalid("You may pass either type or types, but not both.", param="types")
    if len(many) > 20:
        raise invalid("You may pass up to 20 types.", param="types")
    pattern = None
    if one is not None:
        pattern = re.compile(".*".join(re.escape(part) for part in one.split("*")))
    wanted = frozenset(many)
    delivered = query.scalars.get("delivery_success")
    if delivered not in (None, "true", "false"):
        raise invalid(f"Invalid boolean: {delivered}", param="delivery_success")
    pending_wanted = None if delivered is None else delivered == "false"

    def test(event: Json) -> bool:
        if pattern is not None and not pattern.fullmatch(event["type"]):
            return False
        if wanted and event["type"] not in wanted:
            return False
        pending = event.get("pending_webhooks", 0) > 0
        return pending_wanted is None or pending == pending_wanted

    return test
