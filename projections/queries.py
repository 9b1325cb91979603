"""Reading the read models back: MRR at an instant, movements in a period, one customer's
story. Sums are exact (from the stored fractions) and rounded only by the caller."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

import orjson
from sqlalchemy import Row, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.schema import customer_mrr, mrr_movements, subscription_states
from projections.money import from_text


@dataclass(frozen=True, slots=True)
class MovementRow:
    customer_id: str
    effective_at: datetime
    known_at: datetime
    kind: str
    subtype: str | None
    amount: Fraction
    mrr_before: Fraction
    mrr_after: Fraction
    currency: str
    event_ids: tuple[str, ...]
    positions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class IntervalRow:
    customer_id: str
    valid_from: datetime
    valid_to: datetime | None
    mrr: Fraction
    currency: str
    state: str
    event_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SubscriptionStateRow:
    subscription_id: str
    valid_from: datetime
    valid_to: datetime | None
    status: str
    mrr: Fraction
    pending_cancellation: bool
    pause_collection: bool
    event_id: str


async def mrr_at(
    conn: AsyncConnection, account: str, at: datetime, customer_id: str | None = None
) -> dict[str, Fraction]:
    """MRR per currency at `at`: every change effective before `at` applied (METRICS.md:
    a change at exactly t1 belongs to the next period)."""
    c = customer_mrr.c
    query = select(c.currency, c.mrr_exact).where(
        c.account == account, c.valid_from < at, or_(c.valid_to.is_(None), c.valid_to >= at)
    )
    if customer_id is not None:
        query = query.where(c.customer_id == customer_id)
    totals: dict[str, Fraction] = defaultdict(Fraction)
    for row in await conn.execute(query):
        totals[row.currency] += from_text(row.mrr_exact)
    return {currency: amount for currency, amount in totals.items() if amount}


async def movements_between(
    conn: AsyncConnection, account: str, start: datetime, end: datetime
) -> list[MovementRow]:
    m = mrr_movements.c
    query = (
        select(mrr_movements)
        .where(m.account == account, m.effective_at >= start, m.effective_at < end)
        .order_by(m.effective_at, m.customer_id)
    )
    return [_movement(row) for row in await conn.execute(query)]


async def customer_story(
    conn: AsyncConnection, account: str, customer_id: str
) -> tuple[list[IntervalRow], list[MovementRow], list[SubscriptionStateRow]]:
    c, m, s = customer_mrr.c, mrr_movements.c, subscription_states.c
    intervals = [
        IntervalRow(
            row.customer_id,
            row.valid_from,
            row.valid_to,
            from_text(row.mrr_exact),
            row.currency,
            row.state,
            tuple(orjson.loads(row.event_ids)),
        )
        for row in await conn.execute(
            select(customer_mrr)
            .where(c.account == account, c.customer_id == customer_id)
            .order_by(c.valid_from)
        )
    ]
    movements = [
        _movement(row)
        for row in await conn.execute(
            select(mrr_movements)
            .where(m.account == account, m.customer_id == customer_id)
            .order_by(m.effective_at)
        )
    ]
    states = [
        SubscriptionStateRow(
            row.subscription_id,
            row.valid_from,
            row.valid_to,
            row.status,
            from_text(row.mrr_exact),
            row.pending_cancellation,
            row.pause_collection,
            row.event_id,
        )
        for row in await conn.execute(
            select(subscription_states)
            .where(s.account == account, s.customer_id == customer_id)
            .order_by(s.subscription_id, s.valid_from)
        )
    ]
    return intervals, movements, states


def _movement(r: Row[Any]) -> MovementRow:
    return MovementRow(
        customer_id=r.customer_id,
        effective_at=r.effective_at,
        known_at=r.known_at,
        kind=r.kind,
        subtype=r.subtype,
        amount=from_text(r.amount_exact),
        mrr_before=from_text(r.mrr_before_exact),
        mrr_after=from_text(r.mrr_after_exact),
        currency=r.currency,
        event_ids=tuple(orjson.loads(r.event_ids)),
        positions=tuple(orjson.loads(r.positions)),
    )
