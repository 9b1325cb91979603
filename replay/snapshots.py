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
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

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


async def latest_known(
    engine: AsyncEngine, account: str, object_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The newest state the ledger holds for each object (business order, not arrival)."""
    if not object_ids:
        return {}
    e = ledger_events.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(e.object_id, e.created, e.event_id, e.payload).where(
                e.account == account, e.object_id.in_(list(object_ids))
            )
        )
        candidates = rows.all()
    best: dict[str, tuple[Any, dict[str, Any]]] = {}
    for row in candidates:
        obj = orjson.loads(row.payload)["data"]["object"]
        key = (row.created, STATUS_RANK.get(str(obj.get("status")), 0), row.event_id)
        if row.object_id not in best or key > best[row.object_id][0]:
            best[row.object_id] = (key, obj)
    return {object_id: obj for object_id, (_, obj) in best.items()}


async def changed_records(
    engine: AsyncEngine,
    account: str,
    objects: Sequence[dict[str, Any]],
    *,
    fetched_at: datetime,
    api_version: str,
    livemode: bool,
) -> list[NewEvent]:
    """Snapshot records for the objects whose state the ledger does not hold yet."""
    known = await latest_known(engine, account, [str(o["id"]) for o in objects])
    return [
        snapshot_record(
            account, obj, fetched_at=fetched_at, api_version=api_version, livemode=livemode
        )
        for obj in objects
        if obj["id"] not in known or _state(known[obj["id"]]) != _state(obj)
    ]
