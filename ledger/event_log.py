"""The event log API: append a batch, read after a position, read one customer's or object's
events. Rows are only ever inserted; the database refuses UPDATE and DELETE (migration 0001).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
from sqlalchemy import Row, Select, func, select, text, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger import pg_append
from ledger.engine import APPEND_LOCK_KEY, dialect_insert, is_postgres, write_transaction
from ledger.envelope import NewEvent, Source
from ledger.errors import LedgerUnavailable
from ledger.schema import UTCDateTime, ledger_conflicts, ledger_events

_AS_UTC = UTCDateTime()


class AppendPath(StrEnum):
    """How a batch is stored. Both give the same rows and results (the contract suite runs
    each); UNNEST is the default on PostgreSQL, CORE the only one on SQLite."""

    CORE = "core"  # SQLAlchemy Core: the obvious path, and the reference
    UNNEST = "unnest"  # PostgreSQL: one prepared asyncpg statement per batch (pg_append)


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # same event id, same content: already recorded
    CONFLICT = "conflict"  # same event id, other content: kept aside, original untouched


@dataclass(frozen=True, slots=True)
class AppendResult:
    outcome: Outcome
    position: int  # of the stored row; for duplicates and conflicts, of the original


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int
    account: str
    event_id: str
    type: str
    object_type: str
    object_id: str | None
    customer_id: str | None
    livemode: bool
    api_version: str | None
    created: datetime
    received_at: datetime
    source: Source
    payload: str


@dataclass(frozen=True, slots=True)
class CountRow:
    account: str
    type: str
    source: str
    events: int


@dataclass(frozen=True, slots=True)
class LedgerStats:
    events: int
    conflicts: int
    first_position: int | None
    last_position: int | None
    first_received_at: datetime | None
    last_received_at: datetime | None
    by_account_type_source: tuple[CountRow, ...]
    conflicts_by_account: dict[str, int]


def row_to_event(row: Row[Any]) -> StoredEvent:
    return StoredEvent(
        position=row.position,
        account=row.account,
        event_id=row.event_id,
        type=row.type,
        object_type=row.object_type,
        object_id=row.object_id,
        customer_id=row.customer_id,
        livemode=row.livemode,
        api_version=row.api_version,
        created=row.created,
        received_at=row.received_at,
        source=Source(row.source),
        payload=row.payload,
    )


class EventLog:
    """The append-only log over one engine. Database errors surface as LedgerUnavailable."""

    def __init__(self, engine: AsyncEngine, *, path: AppendPath | None = None) -> None:
        self.engine = engine
        if path is None:
            path = AppendPath.UNNEST if is_postgres(engine) else AppendPath.CORE
        if path is AppendPath.UNNEST and not is_postgres(engine):
            raise ValueError("the unnest append path needs PostgreSQL")
        self.path = path

    async def append(self, events: Sequence[NewEvent]) -> list[AppendResult]:
        """Store a batch in one transaction; one result per input, in input order.

        The unique key (account, event_id) is the idempotency check: a redelivery fails
        the insert and is reported, never a read-then-write race.
        """
        if not events:
            return []
        try:
            if self.path is AppendPath.UNNEST:
                return await self._append_unnest(events)
            async with write_transaction(self.engine) as conn:
                return await self._append(conn, events)
        except (SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise LedgerUnavailable(f"the ledger did not commit: {type(exc).__name__}") from exc
        except OSError as exc:
            raise LedgerUnavailable(f"the ledger is unreachable: {type(exc).__name__}") from exc

    async def _append(
        self, conn: AsyncConnection, events: Sequence[NewEvent]
    ) -> list[AppendResult]:
        if is_postgres(conn):
            # Positions come from a sequence, handed out at INSERT but visible at COMMIT.
            # Two overlapping transactions could commit 8 before 7, and a reader tailing
            # "position > 7" would see 8 and skip 7 forever. Holding one lock from the
            # first INSERT to COMMIT makes positions visible in order. SQLite needs none:
            # it has a single writer (write_transaction takes its lock up front).
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
        now = datetime.now(UTC)
        first = _first_of_each(events)
        stored = await self._insert_new(conn, list(first.values()), now)
        existing = await self._positions_and_hashes(
            conn, [key for key in first if key not in stored]
        )
        results, conflicts = _outcomes(events, first, stored, existing, now)
        if conflicts:
            insert = dialect_insert(conn, ledger_conflicts)
            await conn.execute(insert.values(conflicts).on_conflict_do_nothing())
        return results

    async def _append_unnest(self, events: Sequence[NewEvent]) -> list[AppendResult]:
        """_append on asyncpg itself: the lock, one statement for the batch (pg_append),
        one more only if a conflict is to be kept, in one transaction. The connection comes
        from the engine's pool; one that failed is dropped from it, not reused."""
        now = datetime.now(UTC)
        first = _first_of_each(events)
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: asyncpg.Connection = raw.driver_connection
            try:
                async with driver.transaction():
                    # Positions visible in commit order: see _append.
                    await driver.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
                    rows = await driver.fetch(
                        pg_append.INSERT_EVENTS, *pg_append.event_columns(list(first.values()), now)
                    )
                    stored, existing = pg_append.split_rows(rows)
                    if len(stored) + len(existing) != len(first):
                        raise LedgerUnavailable("the ledger did not account for every event")
                    results, conflicts = _outcomes(events, first, stored, existing, now)
                    if conflicts:
                        await driver.execute(
                            pg_append.INSERT_CONFLICTS, *pg_append.conflict_columns(conflicts)
                        )
            except BaseException:
                await conn.invalidate()
                raise
        return results

    async def _insert_new(
        self, conn: AsyncConnection, events: list[NewEvent], now: datetime
    ) -> dict[tuple[str, str], int]:
        # One single-row statement executed with many parameter sets: SQLAlchemy compiles
        # and caches it once and batches the rows itself ("insertmanyvalues", RETURNING
        # included). A multi-row .values([...]) would be compiled anew for every batch,
        # inside the append lock (bench/ingest's profile: a third of the append's time).
        statement = (
            dialect_insert(conn, ledger_events)
            .on_conflict_do_nothing(index_elements=["account", "event_id"])
            .returning(ledger_events.c.position, ledger_events.c.account, ledger_events.c.event_id)
        )
        result = await conn.execute(statement, [_event_row(e, now) for e in events])
        return {(row.account, row.event_id): row.position for row in result}

    async def _positions_and_hashes(
        self, conn: AsyncConnection, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, str]]:
        if not keys:
            return {}
        t = ledger_events.c
        rows = await conn.execute(
            select(t.account, t.event_id, t.position, t.content_hash).where(
                tuple_(t.account, t.event_id).in_(keys)
            )
        )
        return {(r.account, r.event_id): (r.position, r.content_hash) for r in rows}

    async def read_after(
        self, position: int, *, limit: int = 1000, account: str | None = None
    ) -> list[StoredEvent]:
        """Events with a position greater than `position`, in position order."""
        return await self._fetch(after_position(position, limit=limit, account=account))

    async def events_of_customer(self, account: str, customer_id: str) -> list[StoredEvent]:
        return await self._fetch(of_customers(account, [customer_id]))

    async def events_of_object(self, account: str, object_id: str) -> list[StoredEvent]:
        t = ledger_events.c
        return await self._fetch(
            select(ledger_events)
            .where(t.account == account, t.object_id == object_id)
            .order_by(t.position)
        )

    async def last_position(self) -> int:
        async with self._connect() as conn:
            value = await conn.scalar(select(func.max(ledger_events.c.position)))
        return int(value or 0)

    async def stats(self) -> LedgerStats:
        t = ledger_events.c
        async with self._connect() as conn:
            totals = (
                await conn.execute(
                    select(
                        func.count(),
                        func.min(t.position),
                        func.max(t.position),
                        func.min(t.received_at),
                        func.max(t.received_at),
                    ).select_from(ledger_events)
                )
            ).one()
            counts = await conn.execute(
                select(t.account, t.type, t.source, func.count().label("n"))
                .group_by(t.account, t.type, t.source)
                .order_by(t.account, t.type, t.source)
            )
            by_group = tuple(CountRow(r.account, r.type, r.source, r.n) for r in counts)
            c = ledger_conflicts.c
            conflict_rows = await conn.execute(
                select(c.account, func.count().label("n")).group_by(c.account)
            )
            conflicts = {r.account: int(r.n) for r in conflict_rows}
        return LedgerStats(
            events=int(totals[0]),
            conflicts=sum(conflicts.values()),
            first_position=totals[1],
            last_position=totals[2],
            # min()/max() lose the column type on SQLite; convert as the column would.
            first_received_at=_AS_UTC.process_result_value(totals[3], self.engine.dialect),
            last_received_at=_AS_UTC.process_result_value(totals[4], self.engine.dialect),
            by_account_type_source=by_group,
            conflicts_by_account=conflicts,
        )

    async def _fetch(self, query: Any) -> list[StoredEvent]:
        async with self._connect() as conn:
            return [row_to_event(row) for row in await conn.execute(query)]

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        """A read connection; any database error inside becomes LedgerUnavailable."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise LedgerUnavailable(f"the ledger is unreachable: {type(exc).__name__}") from exc


def after_position(position: int, *, limit: int, account: str | None = None) -> Select[Any]:
    """The query behind read_after, for readers running it inside their own transaction."""
    query = (
        select(ledger_events)
        .where(ledger_events.c.position > position)
        .order_by(ledger_events.c.position)
        .limit(limit)
    )
    if account is not None:
        query = query.where(ledger_events.c.account == account)
    return query


def of_customers(account: str, customer_ids: Sequence[str]) -> Select[Any]:
    """Every event of these customers, grouped by customer, in position order."""
    t = ledger_events.c
    return (
        select(ledger_events)
        .where(t.account == account, t.customer_id.in_(customer_ids))
        .order_by(t.customer_id, t.position)
    )


def _first_of_each(events: Sequence[NewEvent]) -> dict[tuple[str, str], NewEvent]:
    """The batch without repeats: the first delivery of each (account, event id)."""
    first: dict[tuple[str, str], NewEvent] = {}
    for event in events:
        first.setdefault((event.account, event.event_id), event)
    return first


def _outcomes(
    events: Sequence[NewEvent],
    first: dict[tuple[str, str], NewEvent],
    stored: dict[tuple[str, str], int],
    existing: dict[tuple[str, str], tuple[int, str]],
    now: datetime,
) -> tuple[list[AppendResult], list[dict[str, Any]]]:
    """One result per input, in input order, and the conflicts to keep aside, from what
    the insert stored (key -> position) and what was there before (key -> position, hash)."""
    results: list[AppendResult] = []
    reported_stored: set[tuple[str, str]] = set()
    conflicts: list[dict[str, Any]] = []
    for event in events:
        key = (event.account, event.event_id)
        if key in stored:
            position, original_hash = stored[key], first[key].content_hash
            outcome = Outcome.DUPLICATE if key in reported_stored else Outcome.STORED
            reported_stored.add(key)
        else:
            position, original_hash = existing[key]
            outcome = Outcome.DUPLICATE
        if event.content_hash != original_hash:
            outcome = Outcome.CONFLICT
            conflicts.append(_conflict_row(event, position, now))
        results.append(AppendResult(outcome, position))
    return results, conflicts


def _event_row(event: NewEvent, received_at: datetime) -> dict[str, Any]:
    return {
        "account": event.account,
        "event_id": event.event_id,
        "type": event.type,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "customer_id": event.customer_id,
        "livemode": event.livemode,
        "api_version": event.api_version,
        "created": event.created,
        "received_at": received_at,
        "source": event.source.value,
        "content_hash": event.content_hash,
        "payload": event.payload,
    }


def _conflict_row(event: NewEvent, original_position: int, received_at: datetime) -> dict[str, Any]:
    return {
        "account": event.account,
        "event_id": event.event_id,
        "original_position": original_position,
        "received_at": received_at,
        "source": event.source.value,
        "content_hash": event.content_hash,
        "payload": event.payload,
    }
