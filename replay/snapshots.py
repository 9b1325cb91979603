"""Turning fetched objects into ledger records, only when they differ from what the ledger
already knows.

A snapshot record is an event envelope of our own around the object as Stripe returned it
(type `<object>.snapshot`, source backfill). Its `created` is when we fetched it: the time
the ledger learned this state, so it never loses to an older webhook. Its id is derived
from the account, the object and its content, so storing the same state twice is a
duplicate, never a second row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.envelope import NewEvent, Source, parse_event
from ledger.schema import ledger_events
from projections.customer_facts import STATUS_RANK
from projections.stripe_fields import StripeShapeError, read_object

# Fields that change without the object changing (a list's url, webhook-only counters).
_VOLATILE = {"pending_webhooks", "url"}


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _canonical(v) for k, v in obj.items() if k not in _VOLATILE}
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    return obj


def snapshot_record(
    account: str, obj: dict[str, Any], *, fetched_at: datetime, api_version: str, livemode: bool
) -> NewEvent:
    content = orjson.dumps(_canonical(obj), option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(f"{account}\0{obj['id']}\0".encode() + content).hexdigest()
    envelope = {
        "id": f"evt_snap_{digest[:24]}",
        "object": "event",
        "type": f"{obj['object']}.snapshot",
        "api_version": api_version,
        "created": int(fetched_at.timestamp()),
        "livemode": obj.get("livemode", livemode)
        if isinstance(obj.get("livemode"), bool)
        else livemode,
        "pending_webhooks": 0,
        "request": None,
        "data": {"object": obj},
        "stripe_ledger": {"snapshot": True},
    }
    return parse_event(orjson.dumps(envelope), account=account, source=Source.BACKFILL)


def _state(obj: dict[str, Any]) -> Any:
    """What must differ for an object to count as changed: its meaning as the
    projections read it (any API layout), else its canonical JSON."""
    try:
        record = read_object(obj)
    except (StripeShapeError, KeyError, TypeError, ValueError):
        record = None
    return record if record is not None else _canonical(obj)


async def changed_records(
    engine: AsyncEngine,
    account: str,
    objects: Sequence[dict[str, Any]],
    *,
    fetched_at: datetime,
    api_version: str,
    livemode: bool,
) -> list[NewEvent]:
    """Snapshot records for the objects whose state the ledger does not hold yet.

    Decided without re-reading the ledger's payloads wherever it can be: a record whose id
    is stored already holds this very content (appending it again would store nothing), an
    object the ledger has never seen is new; only an object seen in another state is
    compared, with its newest state alone (tests/test_replay.py holds this equal to
    comparing with every object's newest state)."""
    records = {
        str(obj["id"]): snapshot_record(
            account, obj, fetched_at=fetched_at, api_version=api_version, livemode=livemode
        )
        for obj in objects
    }
    if not records:
        return []
    e = ledger_events.c
    async with engine.connect() as conn:
        stored = set(
            (
                await conn.scalars(
                    select(e.event_id).where(
                        e.account == account,
                        e.event_id.in_([r.event_id for r in records.values()]),
                    )
                )
            ).all()
        )
        unsure = [object_id for object_id, r in records.items() if r.event_id not in stored]
        newest = await _newest_rows(conn, account, unsure)
    changed = []
    for obj in objects:
        record = records[str(obj["id"])]
        if record.event_id in stored:
            continue
        rows = newest.get(str(obj["id"]))
        if rows is None or _state(_newest_object(rows)) != _state(obj):
            changed.append(record)
    return changed


async def _newest_rows(
    conn: AsyncConnection, account: str, object_ids: Sequence[str]
) -> dict[str, list[tuple[Any, str, str]]]:
    """Per object, its events at its latest `created` (created, event id, payload): the
    newest state is among them, whatever the tie-break."""
    if not object_ids:
        return {}
    e = ledger_events.c
    heads = (
        select(e.object_id, func.max(e.created).label("created"))
        .where(e.account == account, e.object_id.in_(list(object_ids)))
        .group_by(e.object_id)
        .subquery()
    )
    rows = await conn.execute(
        select(e.object_id, e.created, e.event_id, e.payload).join(
            heads,
            (e.account == account)
            & (e.object_id == heads.c.object_id)
            & (e.created == heads.c.created),
        )
    )
    found: dict[str, list[tuple[Any, str, str]]] = {}
    for row in rows:
        found.setdefault(row.object_id, []).append((row.created, row.event_id, row.payload))
    return found


def _newest_object(rows: list[tuple[Any, str, str]]) -> dict[str, Any]:
    """Business order: latest `created`, then the object's own state, then the event id."""
    best: tuple[Any, ...] | None = None
    newest: dict[str, Any] = {}
    for created, event_id, payload in rows:
        obj: dict[str, Any] = orjson.loads(payload)["data"]["object"]
        key = (created, STATUS_RANK.get(str(obj.get("status")), 0), event_id)
        if best is None or key > best:
            best, newest = key, obj
    return newest
