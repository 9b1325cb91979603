"""Reading a Stripe event's envelope: just the fields the ledger needs to store and route it.

The envelope (`id`, `type`, `created`, `livemode`, `api_version`, `data.object`'s kind,
id and customer) has kept its shape across API versions; the business fields inside
`data.object` have not, and are read only by projections/stripe_fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import String

from ledger.errors import MalformedEvent
from ledger.schema import ledger_events

# Differs between deliveries of one event, so it must not make a redelivery a conflict.
# https://docs.stripe.com/api/events/object#event_object-pending_webhooks
_VOLATILE_FIELDS = ("pending_webhooks",)
# Stripe's objects are shallow (an event with expanded lists is about ten levels deep, and
# metadata values are strings), while orjson reads 1024 levels but writes only 254: a limit
# far below both, checked before anything else reads the document, keeps every deeper body
# a one-line 400 instead of an exception later (content_hash, the read models).
MAX_DEPTH = 64


class Source(StrEnum):
    WEBHOOK = "webhook"
    BACKFILL = "backfill"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ready to append: its raw payload plus the columns the ledger indexes."""

    account: str
    event_id: str
    type: str
    object_type: str
    object_id: str | None
    customer_id: str | None
    livemode: bool
    api_version: str | None
    created: datetime
    source: Source
    content_hash: str
    payload: str


def content_hash(document: Mapping[str, Any]) -> str:
    """A hash of the event that is equal for every delivery of the same event."""
    stable = {k: v for k, v in document.items() if k not in _VOLATILE_FIELDS}
    return hashlib.sha256(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _customer_of(obj: Mapping[str, Any]) -> str | None:
    if obj.get("object") == "customer":
        return _str_or_none(obj.get("id"))
    customer = obj.get("customer")
    if isinstance(customer, Mapping):  # an expanded customer
        customer = customer.get("id")
    return _str_or_none(customer)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _length(column: str) -> int | None:
    kind = ledger_events.c[column].type
    return kind.length if isinstance(kind, String) else None


# Read once, not per delivery (the lookup through the table's columns costs more than the check).
_LENGTHS = {
    column: _length(column)
    for column in ("event_id", "type", "object_type", "object_id", "customer_id", "api_version")
}


def _check_storable(fields: Mapping[str, str | None]) -> None:
    """Refuse routing fields their ledger columns cannot hold. Stripe's ids and names are
    far shorter than the columns; a longer one, or one with a NUL (PostgreSQL text cannot
    hold it), is not a Stripe event, and must not reach the database, where it would fail
    the whole group-committed batch it arrived in, with a 503, again at every retry."""
    for column, value in fields.items():
        if value is None:
            continue
        limit = _LENGTHS[column]
        if limit is not None and len(value) > limit:
            raise MalformedEvent(f"event {column} is longer than {limit} characters")
        if "\x00" in value:
            raise MalformedEvent(f"event {column} contains a NUL character")


def _contains(raw: bytes | str, text: str) -> bool:
    return text.encode() in raw if isinstance(raw, bytes) else text in raw


def _openings(raw: bytes | str) -> int:
    if isinstance(raw, bytes):
        return raw.count(b"{") + raw.count(b"[")
    return raw.count("{") + raw.count("[")


def _check_document(document: dict[str, Any], raw: bytes | str) -> None:
    """Refuse documents nested deeper than MAX_DEPTH, and any string holding a NUL (as
    `\\u0000`): PostgreSQL's jsonb cannot hold one, so a stored one would make every
    `payload::jsonb` query over the ledger fail. Stripe sends neither."""
    # Every level of nesting opens with a `{` or `[` of its own, so a body with no more
    # of them than MAX_DEPTH (a typical 3 KB event has about 20) and no escaped NUL passes
    # the walk below: two scans in C instead of a walk over every value in Python.
    if _openings(raw) <= MAX_DEPTH and not _contains(raw, "\\u0000"):
        return
    _walk_document(document, raw)


def _walk_document(document: dict[str, Any], raw: bytes | str) -> None:
    """_check_document's walk over every value."""
    nul_possible = _contains(raw, "\\u0000")
    level: list[dict[str, Any] | list[Any]] = [document]
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise MalformedEvent(f"body is nested deeper than {MAX_DEPTH} levels")
        below: list[dict[str, Any] | list[Any]] = []
        for node in level:
            values = list(node.values()) if isinstance(node, dict) else node
            if nul_possible and isinstance(node, dict) and any("\x00" in k for k in node):
                raise MalformedEvent("body contains a NUL character (\\u0000)")
            for value in values:
                if isinstance(value, dict | list):
                    below.append(value)
                elif nul_possible and isinstance(value, str) and "\x00" in value:
                    raise MalformedEvent("body contains a NUL character (\\u0000)")
        level = below


def parse_event(raw: bytes | str, *, account: str, source: Source) -> NewEvent:
    """Turn a raw event body into a NewEvent, or raise MalformedEvent with a one-line reason.

    The payload is kept exactly as received; parsing only reads routing fields.
    """
    # A raw NUL is never valid JSON; saying so is clearer than the parser's position.
    if _contains(raw, "\x00"):
        raise MalformedEvent("body contains a NUL byte")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"body is not valid JSON ({exc.msg})") from None
    if not isinstance(document, dict):
        raise MalformedEvent("body is not a JSON object")
    _check_document(document, raw)
    if document.get("object") == "v2.core.event":
        raise MalformedEvent(
            "thin (v2) event notifications carry no object; configure the endpoint with "
            "snapshot payloads (API v1 events)"
        )
    event_id = document.get("id")
    if not isinstance(event_id, str) or not event_id.startswith("evt_"):
        raise MalformedEvent("event has no Stripe event id (evt_...)")
    event_type = document.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("event has no type")
    created = document.get("created")
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        raise MalformedEvent("event has no integer `created` time")
    livemode = document.get("livemode")
    if not isinstance(livemode, bool):
        raise MalformedEvent("event has no boolean `livemode`")
    data = document.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict) or not isinstance(obj.get("object"), str):
        raise MalformedEvent("event has no `data.object` with an `object` type")
    try:
        created_at = datetime.fromtimestamp(created, UTC)
    except (OverflowError, OSError, ValueError):  # past year 9999, or past the C library's
        raise MalformedEvent("event `created` time is out of range") from None
    api_version = document.get("api_version")
    api_version = api_version if isinstance(api_version, str) else None
    object_id = _str_or_none(obj.get("id"))  # `invoice.upcoming` objects have no id.
    customer_id = _customer_of(obj)
    _check_storable(
        {
            "event_id": event_id,
            "type": event_type,
            "object_type": obj["object"],
            "object_id": object_id,
            "customer_id": customer_id,
            "api_version": api_version,
        }
    )
    payload = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return NewEvent(
        account=account,
        event_id=event_id,
        type=event_type,
        object_type=obj["object"],
        object_id=object_id,
        customer_id=customer_id,
        livemode=livemode,
        api_version=api_version,
        created=created_at,
        source=source,
        content_hash=content_hash(document),
        payload=payload,
    )
