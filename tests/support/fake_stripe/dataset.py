"""What the fake Stripe serves: objects by type and events, kept newest first, and its clock.

The test thread writes while the server thread reads, under one lock. A stored dict is never
changed after it is stored (`put` replaces it), so the server may serialise what it read after
letting the lock go.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from simulator.stripe_account import StripeAccount

Json = dict[str, Any]
Match = Callable[[Json], bool]

# List endpoints, by the `object` value of what they list.
RESOURCE_OF: Final = {
    "customer": "customers",
    "subscription": "subscriptions",
    "invoice": "invoices",
    "charge": "charges",
    "refund": "refunds",
    "balance_transaction": "balance_transactions",
    "invoice_payment": "invoice_payments",
    "event": "events",
}
RESOURCES: Final = tuple(RESOURCE_OF.values())
OBJECT_RESOURCES: Final = tuple(r for r in RESOURCES if r != "events")
OBJECT_KINDS: Final = frozenset(k for k, r in RESOURCE_OF.items() if r != "events")

# Nested lists in an object carry at most 10 entries; the rest is behind the list's `url`.
EMBEDDED_LIMIT: Final = 10
# `GET /v1/events` only reaches 30 days back: https://docs.stripe.com/api/events/list
EVENT_RETENTION: Final = 30 * 24 * 3600


class CursorMissing(LookupError):
    """A `starting_after` / `ending_before` id that names nothing listable."""

    def __init__(self, object_id: str) -> None:
        super().__init__(object_id)
        self.object_id = object_id


@dataclass(frozen=True, slots=True)
class Page:
    data: list[Json]
    has_more: bool


def json_copy(value: Mapping[str, Any]) -> Json:
    """A deep copy through JSON: fast, and it refuses what Stripe could never send."""
    copied: Json = orjson.loads(orjson.dumps(value))
    return copied


@contextmanager
def paused_gc() -> Iterator[None]:
    """Bulk copies allocate millions of acyclic dicts; the cycle collector would spend most
    of the time rescanning them (measured: 3.9 s -> 1.1 s for a 10k-object account)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _unix(value: datetime | int) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("give an aware datetime")
        return int(value.timestamp())
    return value


def _embedded_lines(invoice_id: str, lines: list[Json]) -> Json:
    return {
        "object": "list",
        "data": lines[:EMBEDDED_LIMIT],
        "has_more": len(lines) > EMBEDDED_LIMIT,
        "total_count": len(lines),
        "url": f"/v1/invoices/{invoice_id}/lines",
    }


def _served_invoice(invoice: Json) -> Json:
    lines = invoice.get("lines")
    if not isinstance(lines, dict):
        return invoice
    return {**invoice, "lines": _embedded_lines(invoice["id"], lines["data"])}


class _Table:
    """One resource's objects by id, and (lazily) in list order: `created` desc, then id desc."""

    def __init__(self) -> None:
        self.by_id: dict[str, Json] = {}
        self._order: list[Json] | None = None
        self._position: dict[str, int] = {}

    def put(self, obj: Json) -> None:
        self.by_id[obj["id"]] = obj
        self._order = None

    def order(self) -> tuple[list[Json], dict[str, int]]:
        if self._order is None:
            self._order = sorted(
                self.by_id.values(), key=lambda o: (o["created"], o["id"]), reverse=True
            )
            self._position = {o["id"]: i for i, o in enumerate(self._order)}
        return self._order, self._position


def _page(
    order: list[Json],
    position: Mapping[str, int],
    *,
    limit: int,
    starting_after: str | None,
    ending_before: str | None,
    match: Match,
) -> Page:
    """Stripe's cursor paging over `order` (newest first). A cursor keeps its place in the
    whole list even when the filter would not select it."""
    if ending_before is not None:
        if ending_before not in position:
            raise CursorMissing(ending_before)
        newer: list[Json] = []
        for index in range(position[ending_before] - 1, -1, -1):
            if match(order[index]):
                newer.append(order[index])
                if len(newer) > limit:
                    break
        # The page is the `limit` objects just before the cursor, still newest first.
        return Page(newer[:limit][::-1], has_more=len(newer) > limit)
    start = 0
    if starting_after is not None:
        if starting_after not in position:
            raise CursorMissing(starting_after)
        start = position[starting_after] + 1
    found: list[Json] = []
    for obj in order[start:]:
        if match(obj):
            found.append(obj)
            if len(found) > limit:
                break
    return Page(found[:limit], has_more=len(found) > limit)


class Dataset:
    """Objects by type (customers, subscriptions, invoices, charges, refunds,
    balance_transactions), events, and `now`, the fake's clock (unix seconds)."""

    def __init__(self, *, now: datetime | int, api_version: str | None = None) -> None:
        self._lock = threading.RLock()
        self._now = _unix(now)
        # The version the data is rendered in; echoed as the `Stripe-Version` header.
        self.api_version = api_version
        self._tables = {resource: _Table() for resource in RESOURCES}
        self._lines: dict[str, list[Json]] = {}

    @classmethod
    def from_account(cls, account: StripeAccount, *, now: datetime | int | None = None) -> Dataset:
        """Every object `account` has emitted an event about, in its latest state, plus its
        events and the balance transactions of its backfill snapshots. `now` defaults to the
        newest `created` among them."""
        dataset = cls(now=0, api_version=account.layout)
        dataset.sync(account)
        dataset.now = now if now is not None else dataset.newest_created()
        return dataset

    # the clock -------------------------------------------------------------------------

    @property
    def now(self) -> int:
        with self._lock:
            return self._now

    @now.setter
    def now(self, value: datetime | int) -> None:
        with self._lock:
            self._now = _unix(value)

    def newest_created(self) -> int:
        with self._lock:
            return max(
                (o["created"] for t in self._tables.values() for o in t.by_id.values()),
                default=0,
            )

    # writing ---------------------------------------------------------------------------

    def put(self, obj: Mapping[str, Any]) -> None:
        """Add an object, or replace the one with its id (e.g. an invoice paid later)."""
        self._store(json_copy(obj))

    def add_event(self, event: Mapping[str, Any]) -> None:
        """Add an event (or replace the one with its id)."""
        self._store_event(json_copy(event))

    def sync(self, account: StripeAccount) -> None:
        """Catch up with `account`: add its events not seen yet and store every object they
        name in its current state (replacing anything `put` there). Balance transactions
        come from the backfill snapshots: Stripe sends no events for them."""
        named: dict[str, None] = {}  # an ordered set, so the stores run in a stable order
        with self._lock:
            known = set(self._tables["events"].by_id)
        with paused_gc():
            for event in account.events:
                obj = event["data"]["object"]
                if obj.get("object") in OBJECT_KINDS and isinstance(obj.get("id"), str):
                    named[obj["id"]] = None
                if event["id"] not in known:
                    self._store_event(json_copy(event))
            for object_id in named:
                self._store(account.object(object_id))  # already a copy
            for record in account.backfill:
                self._store(json_copy(record["data"]["object"]))

    def _store(self, obj: Json) -> None:
        resource = RESOURCE_OF.get(obj.get("object", ""))
        if resource is None or resource == "events":
            raise ValueError(f"the fake does not serve {obj.get('object')!r} objects")
        lines = None
        if resource == "invoices":
            lines = obj["lines"]["data"] if isinstance(obj.get("lines"), dict) else []
            obj = _served_invoice(obj)
        with self._lock:
            if lines is not None:
                self._lines[obj["id"]] = lines
            self._tables[resource].put(obj)

    def _store_event(self, event: Json) -> None:
        if event.get("object") != "event":
            raise ValueError("not an event")
        obj = event["data"]["object"]
        if obj.get("object") == "invoice":
            # Webhook and /v1/events payloads also carry at most 10 invoice lines.
            event = {**event, "data": {**event["data"], "object": _served_invoice(obj)}}
        with self._lock:
            self._tables["events"].put(event)

    # reading ---------------------------------------------------------------------------

    def get(self, object_id: str) -> Json | None:
        """A copy of any stored object or event, as the fake serves it; None if unknown."""
        with self._lock:
            for table in self._tables.values():
                if object_id in table.by_id:
                    return json_copy(table.by_id[object_id])
        return None

    def ids(self, resource: str) -> list[str]:
        """Every id of a resource in list order (newest first), events beyond retention too."""
        with self._lock:
            return [o["id"] for o in self._tables[resource].order()[0]]

    def counts(self) -> dict[str, int]:
        """How many objects of each resource, and events, are stored."""
        with self._lock:
            return {resource: len(table.by_id) for resource, table in self._tables.items()}

    def object_count(self) -> int:
        """Stored objects, events not counted."""
        counts = self.counts()
        return sum(counts[r] for r in OBJECT_RESOURCES)

    def visible(self, resource: str, obj: Json) -> bool:
        """Whether the API still returns it: events expire after 30 days."""
        return resource != "events" or obj["created"] >= self.now - EVENT_RETENTION

    def retrieve(self, resource: str, object_id: str) -> Json | None:
        """The stored object itself (do not change it), if the API would return it."""
        with self._lock:
            obj = self._tables[resource].by_id.get(object_id)
            return obj if obj is not None and self.visible(resource, obj) else None

    def page(
        self,
        resource: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        match: Match = lambda _: True,
    ) -> Page:
        """One page of a list endpoint. Raises CursorMissing for an unknown (or expired)
        cursor."""
        with self._lock:
            order, position = self._tables[resource].order()
            oldest = self._now - EVENT_RETENTION
            for cursor in (starting_after, ending_before):
                if cursor is None or cursor not in position:
                    continue  # unknown cursors are refused by _page
                # An expired event is no cursor either: it is gone as far as the API goes.
                if not self.visible(resource, order[position[cursor]]):
                    raise CursorMissing(cursor)
            if resource == "events":
                selected: Match = lambda o: o["created"] >= oldest and match(o)  # noqa: E731
            else:
                selected = match
            return _page(
                order,
                position,
                limit=limit,
                starting_after=starting_after,
                ending_before=ending_before,
                match=selected,
            )

    def lines_page(
        self,
        invoice_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> Page | None:
        """A page of an invoice's lines, in the invoice's own order; None for no invoice."""
        with self._lock:
            lines = self._lines.get(invoice_id)
            if lines is None:
                return None
            position = {line["id"]: i for i, line in enumerate(lines)}
            return _page(
                lines,
                position,
                limit=limit,
                starting_after=starting_after,
                ending_before=ending_before,
                match=lambda _: True,
            )
