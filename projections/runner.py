"""The projection runner: keeps the read models current with the ledger.

Incremental: it reads a window of events after its position, routes them (a batch per
transaction), re-derives every customer they touch from all of that customer's events,
then saves its new position.
Each chunk of customers is replaced in a transaction of its own (short, so webhooks are
not kept waiting on SQLite's single writer), and the position moves only after the last:
a crash in between leaves some customers re-derived and the position where it was, and
the next run derives them again, to the same rows, since a customer's rows are a function
of its events alone. A window holds many batches, so a large backlog (a backfill) derives
each customer once rather than once per batch. Once caught up it refreshes the monthly
metrics from the earliest month whose figures the new rows changed. A rebuild does the
same for every customer from position 0; both give identical tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import is_postgres, write_transaction
from ledger.event_log import after_position, row_to_event
from ledger.schema import CUSTOMER_READ_MODELS, ledger_events, projection_positions
from projections import quarantine, routing
from projections.account_config import AccountConfig, load_config
from projections.customer_derivation import DerivedChunk, Failure, derive_chunk, describe
from projections.metric_settings import MetricSettings
from projections.monthly import refresh_months
from projections.rebuild_beside import beside

PROJECTION = "customers"
# Per-account lock key space for PostgreSQL advisory locks: one runner per account at a
# time across every process; a second one waits instead of writing beside it.
_RUNNER_LOCK_CLASS = 0x5354_5052  # "STPR"
# Memory is bounded by one chunk of customers and their events, not by the ledger.
_CUSTOMERS_PER_QUERY = 100
# A rebuild's transactions write only its own temporary tables; this bounds each one's work.
_CUSTOMERS_PER_REBUILD_TRANSACTION = 500
# Columns that say where a row came from rather than what it says.
_PROVENANCE = {"id", "event_id", "event_ids", "position", "positions"}


class ProjectionRunner:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: MetricSettings | None = None,
        *,
        reporting_currency: str = "usd",
        batch_size: int = 2000,
    ) -> None:
        """`settings` fixes the metric settings (tests); by default each account's stored
        settings are used, and LEDGER_REPORTING_CURRENCY where none is stored."""
        self.engine = engine
        self._settings = settings
        self.reporting_currency = reporting_currency
        self.batch_size = batch_size
        # Events routed before their customers are derived. A backfill's events touch every
        # customer in every window, and each touched customer is derived from its whole
        # history: windows must be large, or a backlog costs a rebuild per window. Only
        # customer ids are held meanwhile; the position is saved after each window.
        self.window = batch_size * 500

    async def config(self, conn: AsyncConnection, account: str) -> AccountConfig:
        stored = await load_config(conn, account, self.reporting_currency)
        if self._settings is None:
            return stored
        return AccountConfig(self._settings, stored.reporting_currency, stored.stored)

    async def catch_up(self, account: str, *, now: datetime | None = None) -> int:
        """Process what was committed when it began; returns the events read. Under steady
        load it stops there rather than chasing new arrivals, so the monthly figures are
        refreshed as well (the worker is woken again for the rest)."""
        processed, changed_since = 0, None
        head = await _head(self.engine)
        while step := await self._step(account, head):
            count, since, reached_head = step
            processed += count
            if since is not None:
                changed_since = min(changed_since or since, since)
            if reached_head:
                break
        if changed_since is not None:
            async with write_transaction(self.engine) as conn:
                await _lock(conn, account)
                await refresh_months(
                    conn, account, await self.config(conn, account), changed_since, now
                )
        return processed

    async def rebuild(self, account: str, *, now: datetime | None = None) -> int:
        """Derive the account's read models again from the whole ledger, up to its head as
        it is now, beside the live ones (see rebuild_beside), then swap them in and catch
        up with what arrived meanwhile. Ingestion and the live runner go on throughout;
        readers see the old rows until the swap commits, and the new ones after."""
        head = await _head(self.engine)
        async with beside(self.engine) as shadow:
            conn = shadow.conn
            async with conn.begin():
                config = await self.config(conn, account)
            position, customer_ids = 0, set()
            while True:
                async with conn.begin():
                    query = after_position(position, limit=self.batch_size * 5, account=account)
                    batch = [
                        row_to_event(row)
                        for row in await conn.execute(query.where(ledger_events.c.position <= head))
                    ]
                    if not batch:
                        break
                    customer_ids |= await routing.route(conn, account, batch)
                position = batch[-1].position
            ordered = sorted(customer_ids)
            for start in range(0, len(ordered), _CUSTOMERS_PER_REBUILD_TRANSACTION):
                async with conn.begin():
                    chunk = ordered[start : start + _CUSTOMERS_PER_REBUILD_TRANSACTION]
                    await self._rederive(conn, account, chunk, config, replace=False)
            async with conn.begin():
                await shadow.keep_quarantined_rows(account)
                await refresh_months(conn, account, config, None, now)
            async with shadow.swap_transaction() as live:
                await _lock(live, account)
                await shadow.replace_live_rows(account)
                # A new mark (see _step): a step begun before the swap does not save its
                # position over it, since what it routed and derived may predate the swap.
                await _save_position(live, account, position)
        # Events after `head` were dropped with the live routing: the live runner (or this
        # catch-up) routes and derives them again on top of the rebuilt rows.
        await self.catch_up(account, now=now)
        return len([c for c in customer_ids if c != routing.GUEST])

    async def refresh_monthly(self, account: str, *, now: datetime | None = None) -> int:
        """Recompute every month (after an FX import, or when a new month begins)."""
        async with write_transaction(self.engine) as conn:
            await _lock(conn, account)
            return await refresh_months(conn, account, await self.config(conn, account), None, now)

    async def position(self, account: str) -> int:
        async with self.engine.connect() as conn:
            return await _position(conn, account)

    async def _step(self, account: str, head: int) -> tuple[int, datetime | None, bool] | None:
        """Route a window up to `head`, derive its customers, save the position: the events
        read, the earliest instant whose figures changed, and whether `head` was reached."""
        async with self.engine.connect() as conn:
            mark = await _mark(conn, account)
        last = mark[0]
        touched: set[str] = set()
        count, reached_head = 0, False
        # Each batch is routed in a transaction of its own (routing again is harmless),
        # so SQLite's single writer is never held for a whole window. Only up to `head`:
        # under steady load routing is about as fast as arrivals, and chasing them would
        # put off deriving for as long as the load lasts.
        while count < self.window and not reached_head:
            routed = await self._route_batch(account, last, head)
            if routed is None:
                reached_head = True
                break
            batch_last, batch_count, batch_touched = routed
            touched |= batch_touched
            last, count = batch_last, count + batch_count
            reached_head = batch_count < self.batch_size or last >= head
        if not count:
            return None
        async with self.engine.connect() as conn:
            config = await self.config(conn, account)
        changed_since: datetime | None = None
        customer_ids = sorted(touched)
        for start in range(0, len(customer_ids), _CUSTOMERS_PER_QUERY):
            async with write_transaction(self.engine) as conn:
                await _lock(conn, account)
                since = await self._rederive(
                    conn,
                    account,
                    customer_ids[start : start + _CUSTOMERS_PER_QUERY],
                    config,
                    replace=True,
                )
            if since is not None:
                changed_since = min(changed_since or since, since)
        async with write_transaction(self.engine) as conn:
            await _lock(conn, account)
            # Else another runner moved it on, or a rebuild swapped its rows in meanwhile.
            if await _mark(conn, account) == mark:
                await _save_position(conn, account, last)
        return count, changed_since, reached_head

    async def _route_batch(
        self, account: str, after: int, head: int
    ) -> tuple[int, int, set[str]] | None:
        """Route the next batch after `after`, up to `head`: its last position, its size,
        and the customers whose events it changed."""
        async with write_transaction(self.engine) as conn:
            await _lock(conn, account)
            query = after_position(after, limit=self.batch_size, account=account)
            events = [
                row_to_event(row)
                for row in await conn.execute(query.where(ledger_events.c.position <= head))
            ]
            if not events:
                return None
            return events[-1].position, len(events), await routing.route(conn, account, events)

    async def _rederive(
        self,
        conn: AsyncConnection,
        account: str,
        customer_ids: Sequence[str],
        config: AccountConfig,
        *,
        replace: bool,
    ) -> datetime | None:
        """Replace these customers' rows; return the earliest instant any row changed at.

        A customer that cannot be derived, or whose rows cannot be written, keeps the rows
        it had and is quarantined (projections/quarantine.py); one that derives again
        leaves the quarantine. Catching up and rebuilding both derive through here.
        """
        changed_since: datetime | None = None
        for start in range(0, len(customer_ids), _CUSTOMERS_PER_QUERY):
            chunk = customer_ids[start : start + _CUSTOMERS_PER_QUERY]
            rows = (await conn.execute(routing.events_of_customers(account, chunk))).all()
            # Pure CPU work: off the event loop, which may also be answering webhooks.
            derived = await asyncio.to_thread(derive_chunk, account, rows, config)
            good = [c for c in chunk if c not in derived.failures]
            old = await _current_rows(conn, account, good) if replace and good else {}
            failures = derived.failures | await _write(conn, account, good, derived, replace)
            written = {c for c in good if c not in failures}
            await quarantine.clear(conn, account, written)
            await quarantine.record(conn, account, failures)
            new = _of_customers(derived.rows, written)
            if replace:
                since = _earliest_change(_of_customers(old, written), new)
            else:
                since = _earliest(new)
            if since is not None:
                changed_since = min(changed_since or since, since)
        return changed_since


async def _write(
    conn: AsyncConnection,
    account: str,
    customer_ids: Sequence[str],
    derived: DerivedChunk,
    replace: bool,
) -> dict[str, Failure]:
    """Write these customers' rows, all at once, else (a write failed, and PostgreSQL
    aborts the transaction: hence the savepoints) one customer at a time; return the
    customers whose rows could not be written, each with why. An outage is raised, never
    blamed on a customer."""
    try:
        async with conn.begin_nested():
            await _replace(conn, account, customer_ids, derived.rows, replace)
        return {}
    except Exception as exc:
        if _is_outage(exc):
            raise
    failures: dict[str, Failure] = {}
    for customer_id in customer_ids:
        try:
            async with conn.begin_nested():
                rows = derived.by_customer.get(customer_id, {})
                await _replace(conn, account, [customer_id], rows, replace)
        except Exception as exc:
            if _is_outage(exc):
                raise
            failures[customer_id] = Failure(derived.event_ids.get(customer_id, ()), describe(exc))
    return failures


async def _replace(
    conn: AsyncConnection,
    account: str,
    customer_ids: Sequence[str],
    rows: dict[Table, list[dict[str, Any]]],
    replace: bool,
) -> None:
    if replace:
        for table in CUSTOMER_READ_MODELS:
            await conn.execute(
                delete(table).where(
                    table.c.account == account, table.c.customer_id.in_(customer_ids)
                )
            )
    for table, table_rows in rows.items():
        if table_rows:
            await conn.execute(table.insert(), table_rows)


def _is_outage(exc: BaseException) -> bool:
    """The database is gone or busy (to be retried), not refusing one customer's rows."""
    if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    return bool(getattr(exc, "connection_invalidated", False))


def _of_customers(
    rows: dict[Table, list[dict[str, Any]]], customer_ids: set[str]
) -> dict[Table, list[dict[str, Any]]]:
    return {t: [r for r in found if r["customer_id"] in customer_ids] for t, found in rows.items()}


async def _current_rows(
    conn: AsyncConnection, account: str, customer_ids: Sequence[str]
) -> dict[Table, list[dict[str, Any]]]:
    found: dict[Table, list[dict[str, Any]]] = {}
    for table in CUSTOMER_READ_MODELS:
        result = await conn.execute(
            select(table).where(table.c.account == account, table.c.customer_id.in_(customer_ids))
        )
        found[table] = [dict(row._mapping) for row in result]
    return found


def _content(row: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, v) for k, v in row.items() if k not in _PROVENANCE))


def _times(rows: Any) -> list[datetime]:
    return [v for row in rows for v in row.values() if isinstance(v, datetime)]


def _earliest(rows: dict[Table, list[dict[str, Any]]]) -> datetime | None:
    return min((t for table_rows in rows.values() for t in _times(table_rows)), default=None)


def _earliest_change(
    old: dict[Table, list[dict[str, Any]]], new: dict[Table, list[dict[str, Any]]]
) -> datetime | None:
    """The earliest time named by any row that differs between the old and new rows."""
    earliest: datetime | None = None
    for table in CUSTOMER_READ_MODELS:
        before = {_content(r): r for r in old.get(table, [])}
        after = {_content(r): r for r in new.get(table, [])}
        differing = [before[k] for k in before.keys() - after.keys()]
        differing += [after[k] for k in after.keys() - before.keys()]
        for moment in _times(differing):
            earliest = min(earliest or moment, moment)
    return earliest


async def _lock(conn: AsyncConnection, account: str) -> None:
    if is_postgres(conn):
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:cls, hashtext(:account))"),
            {"cls": _RUNNER_LOCK_CLASS, "account": account},
        )


async def _head(engine: AsyncEngine) -> int:
    """The last committed position of the whole ledger (positions are visible in commit
    order, so nothing below it is still to come). Not per account: that would scan back
    through other accounts' events."""
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.max(ledger_events.c.position))) or 0)


async def _position(conn: AsyncConnection, account: str) -> int:
    p = projection_positions.c
    value = await conn.scalar(
        select(p.position).where(p.projection == PROJECTION, p.account == account)
    )
    return int(value or 0)


async def _mark(conn: AsyncConnection, account: str) -> tuple[int, datetime | None]:
    """The position and when it was saved: every save, a rebuild's included, changes it,
    even one that saves the same position again."""
    p = projection_positions.c
    row = (
        await conn.execute(
            select(p.position, p.updated_at).where(p.projection == PROJECTION, p.account == account)
        )
    ).first()
    return (int(row.position), row.updated_at) if row is not None else (0, None)


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
