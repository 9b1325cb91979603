"""The projection runner: keeps the read models current with the ledger.

Incremental: it reads events after its position, re-derives every customer they touch
from all of that customer's events, and writes their rows and its new position in one
transaction, so a crash leaves either both or neither. A rebuild does the same for every
customer from position 0; both give identical tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import is_postgres, write_transaction
from ledger.event_log import StoredEvent, after_position, of_customers, row_to_event
from ledger.schema import CUSTOMER_READ_MODELS, ledger_events, projection_positions
from projections.customer_facts import read_customer_facts
from projections.customer_history import derive_customer_history
from projections.metric_settings import DEFAULT, MetricSettings
from projections.read_model_rows import rows_for

PROJECTION = "customers"
# Per-account lock key space for PostgreSQL advisory locks: one runner per account at a
# time across every process; a second one waits instead of writing beside it.
_RUNNER_LOCK_CLASS = 0x5354_5052  # "STPR"
_CUSTOMERS_PER_QUERY = 500


class ProjectionRunner:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: MetricSettings = DEFAULT,
        *,
        batch_size: int = 2000,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.batch_size = batch_size

    async def catch_up(self, account: str) -> int:
        """Process everything appended since the last run; returns the events read."""
        processed = 0
        while n := await self._step(account):
            processed += n
        return processed

    async def rebuild(self, account: str) -> int:
        """Drop the account's read models and derive them again from the whole ledger."""
        async with write_transaction(self.engine) as conn:
            await _lock(conn, account)
            for table in CUSTOMER_READ_MODELS:
                await conn.execute(delete(table).where(table.c.account == account))
            t = ledger_events.c
            last = await conn.scalar(select(func.max(t.position)).where(t.account == account))
            customer_ids = (
                await conn.scalars(
                    select(t.customer_id)
                    .where(t.account == account, t.customer_id.is_not(None))
                    .distinct()
                    .order_by(t.customer_id)
                )
            ).all()
            await self._rederive(conn, account, [c for c in customer_ids if c], replace=False)
            await _save_position(conn, account, int(last or 0))
        return len(customer_ids)

    async def position(self, account: str) -> int:
        async with self.engine.connect() as conn:
            return await _position(conn, account)

    async def _step(self, account: str) -> int:
        async with write_transaction(self.engine) as conn:
            await _lock(conn, account)
            position = await _position(conn, account)
            query = after_position(position, limit=self.batch_size, account=account)
            events = [row_to_event(row) for row in await conn.execute(query)]
            if not events:
                return 0
            touched = sorted({e.customer_id for e in events if e.customer_id})
            await self._rederive(conn, account, touched, replace=True)
            await _save_position(conn, account, events[-1].position)
            return len(events)

    async def _rederive(
        self, conn: AsyncConnection, account: str, customer_ids: Sequence[str], *, replace: bool
    ) -> None:
        for start in range(0, len(customer_ids), _CUSTOMERS_PER_QUERY):
            chunk = customer_ids[start : start + _CUSTOMERS_PER_QUERY]
            if replace:
                for table in CUSTOMER_READ_MODELS:
                    await conn.execute(
                        delete(table).where(
                            table.c.account == account, table.c.customer_id.in_(chunk)
                        )
                    )
            events = [row_to_event(r) for r in await conn.execute(of_customers(account, chunk))]
            batches: dict[Any, list[dict[str, Any]]] = {}
            for customer_id, group in groupby(events, key=_customer_of):
                facts = read_customer_facts(account, customer_id, group)
                history = derive_customer_history(facts, self.settings)
                for table, rows in rows_for(facts, history).items():
                    batches.setdefault(table, []).extend(rows)
            for table, rows in batches.items():
                if rows:
                    await conn.execute(table.insert(), rows)


def _customer_of(event: StoredEvent) -> str:
    return event.customer_id or ""


async def _lock(conn: AsyncConnection, account: str) -> None:
    if is_postgres(conn):
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:cls, hashtext(:account))"),
            {"cls": _RUNNER_LOCK_CLASS, "account": account},
        )


async def _position(conn: AsyncConnection, account: str) -> int:
    p = projection_positions.c
    value = await conn.scalar(
        select(p.position).where(p.projection == PROJECTION, p.account == account)
    )
    return int(value or 0)


async def _save_position(conn: AsyncConnection, account: str, position: int) -> None:
    p = projection_positions.c
    now = datetime.now(UTC)
    updated = await conn.execute(
        projection_positions.update()
        .where(p.projection == PROJECTION, p.account == account)
        .values(position=position, updated_at=now)
    )
    if updated.rowcount == 0:
        await conn.execute(
            projection_positions.insert().values(
                projection=PROJECTION, account=account, position=position, updated_at=now
            )
        )
