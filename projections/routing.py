"""Finding the customer of events whose object does not name one.

A refund (before API 2026-07-29), a balance transaction, an invoice payment and a dispute
point at another object (a charge, an invoice, a refund); the customer is that object's.
The runner records which customer owns each object it has seen, routes what it can, and
keeps the rest pending until the object they refer to arrives (Stripe delivers out of
order). A charge without any customer (a guest payment) is routed to GUEST, so its cash
still counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Select, delete, func, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.account_mode import account_livemode
from ledger.engine import dialect_insert
from ledger.event_log import StoredEvent
from ledger.schema import event_routes, ledger_events, object_owners
from projections.stripe_fields import ref_id

GUEST = "_guest"  # the pseudo-customer of payments made without a Stripe customer


def refers_to(event: StoredEvent) -> str | None:
    """The object whose customer this event belongs to, for events without a customer."""
    obj: dict[str, Any] = orjson.loads(event.payload)["data"]["object"]
    kind = obj.get("object")
    if kind in ("refund", "dispute"):
        return ref_id(obj.get("charge"))
    if kind == "balance_transaction":
        return ref_id(obj.get("source"))
    if kind == "invoice_payment":
        return ref_id(obj.get("invoice"))
    if kind == "charge":
        return GUEST
    return None


async def route(conn: AsyncConnection, account: str, events: Sequence[StoredEvent]) -> set[str]:
    """Record owners and routes for these events; return every customer whose set of
    events grew (directly, by routing, or by a pending route now resolved)."""
    touched = {e.customer_id for e in events if e.customer_id}
    owners = {e.object_id: e.customer_id for e in events if e.customer_id and e.object_id}
    for event in events:
        if event.customer_id and event.object_type == "charge":
            # A refund may be known only inside its charge (no refund.* event was
            # delivered); its balance transaction still needs a customer.
            for nested in _nested_refunds(event):
                owners.setdefault(nested, event.customer_id)
    routes: list[dict[str, Any]] = []
    for event in events:
        if event.customer_id:
            continue
        target = refers_to(event)
        if target is None:
            continue
        owner = (
            GUEST if target == GUEST else owners.get(target) or await _owner(conn, account, target)
        )
        routes.append(
            {
                "account": account,
                "position": event.position,
                "refers_to": target,
                "customer_id": owner,
            }
        )
        if owner is not None:
            touched.add(owner)
            if event.object_id:
                owners.setdefault(event.object_id, owner)
    if routes:
        await _record_routes(conn, routes)
    await _remember_owners(conn, account, owners)
    touched |= await _resolve_pending(conn, account, owners)
    return touched


async def _record_routes(conn: AsyncConnection, routes: list[dict[str, Any]]) -> None:
    """Insert routes; a route already recorded (a window routed again after a crash
    between routing and saving the position) keeps its row, and gains its customer if it
    was pending then and is known now."""
    insert = dialect_insert(conn, event_routes)
    stored = event_routes.c
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=["account", "position"],
            set_={"customer_id": func.coalesce(stored.customer_id, insert.excluded.customer_id)},
        ),
        routes,
    )


def _nested_refunds(event: StoredEvent) -> list[str]:
    refunds = orjson.loads(event.payload)["data"]["object"].get("refunds")
    data = refunds.get("data") if isinstance(refunds, dict) else None
    # ref_id: an id longer than object_owners.object_id names no refund (and would fail the
    # INSERT, stopping routing for the whole account).
    return [found for r in data or [] if isinstance(r, dict) and (found := ref_id(r))]


async def _owner(conn: AsyncConnection, account: str, object_id: str) -> str | None:
    o = object_owners.c
    found = await conn.scalar(
        select(o.customer_id).where(o.account == account, o.object_id == object_id)
    )
    return str(found) if found is not None else None


async def _remember_owners(conn: AsyncConnection, account: str, owners: dict[str, str]) -> None:
    if not owners:
        return
    o = object_owners.c
    known = set(
        (
            await conn.scalars(
                select(o.object_id).where(o.account == account, o.object_id.in_(list(owners)))
            )
        ).all()
    )
    new = [
        {"account": account, "object_id": object_id, "customer_id": customer}
        for object_id, customer in owners.items()
        if object_id not in known
    ]
    if new:
        await conn.execute(object_owners.insert(), new)


async def _resolve_pending(conn: AsyncConnection, account: str, owners: dict[str, str]) -> set[str]:
    """Routes waiting for an object that has now been seen; chains (a balance transaction
    of a refund of a charge) resolve over several rounds."""
    touched: set[str] = set()
    r = event_routes.c
    learned = dict(owners)
    while learned:
        pending = (
            await conn.execute(
                select(r.position, r.refers_to).where(
                    r.account == account,
                    r.customer_id.is_(None),
                    r.refers_to.in_(list(learned)),
                )
            )
        ).all()
        next_round: dict[str, str] = {}
        for position, target in pending:
            customer = learned[target]
            await conn.execute(
                update(event_routes)
                .where(r.account == account, r.position == position)
                .values(customer_id=customer)
            )
            touched.add(customer)
            object_id = await _object_of(conn, position)
            if object_id:
                next_round[object_id] = customer
        await _remember_owners(conn, account, next_round)
        learned = next_round
    return touched


async def _object_of(conn: AsyncConnection, position: int) -> str | None:
    found = await conn.scalar(
        select(ledger_events.c.object_id).where(ledger_events.c.position == position)
    )
    return str(found) if found is not None else None


def events_of_customers(account: str, customer_ids: Sequence[str]) -> Select[Any]:
    """Every event of these customers in the account's mode (ledger.account_mode), their
    own and those routed to them, as rows with a `route` column (the customer), ordered by
    customer then position."""
    e, r = ledger_events.c, event_routes.c
    # Only the account's own mode: a test event must never count in live figures.
    in_mode = e.livemode == account_livemode(account)
    own = select(ledger_events, e.customer_id.label("route")).where(
        e.account == account, e.customer_id.in_(customer_ids), in_mode
    )
    routed = (
        select(ledger_events, r.customer_id.label("route"))
        .join(event_routes, (r.account == e.account) & (r.position == e.position))
        .where(r.account == account, r.customer_id.in_(customer_ids), in_mode)
    )
    combined = union_all(own, routed).subquery()
    return select(combined).order_by(combined.c.route, combined.c.position)


async def forget(conn: AsyncConnection, account: str) -> None:
    """Drop an account's routing, before a rebuild routes the whole ledger again."""
    await conn.execute(delete(event_routes).where(event_routes.c.account == account))
    await conn.execute(delete(object_owners).where(object_owners.c.account == account))
