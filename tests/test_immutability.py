"""No statement rewrites a stored event: the REPLACE family and upserts on both engines
(plain UPDATE, DELETE and TRUNCATE are in test_ledger_contract.py). Each statement aims
at a real row; it must be refused as append-only or change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import Source, parse_event
from ledger.event_log import EventLog, Outcome
from tests.support.databases import ENGINES
from tests.support.signing import encode, fresh_id
from tests.support.stripe_fixtures import event_2020

COLUMNS = (
    "account, event_id, type, object_type, object_id, customer_id, livemode, api_version, "
    "created, received_at, source, content_hash, payload"
)
FIRST = "(SELECT min(position) FROM ledger_events)"
SECOND = "(SELECT max(position) FROM ledger_events)"
# The first event again, its type and payload rewritten.
REWRITTEN = (
    "account, event_id, 'rewritten' AS type, object_type, object_id, customer_id, livemode, "
    "api_version, created, received_at, source, content_hash, '[]' AS payload"
)
FIRST_REWRITTEN = f"SELECT {REWRITTEN} FROM ledger_events WHERE position = {FIRST}"
# The first event's key at the second event's position: a REPLACE deletes both rows.
FIRST_AT_SECOND = f"SELECT {SECOND}, {REWRITTEN} FROM ledger_events WHERE position = {FIRST}"
CONFLICT_COLUMNS = (
    "account, event_id, original_position, received_at, source, content_hash, payload"
)
CONFLICT_REWRITTEN = "account, event_id, original_position, received_at, source, content_hash, '[]'"

SQLITE = {
    "insert or replace": f"INSERT OR REPLACE INTO ledger_events ({COLUMNS}) {FIRST_REWRITTEN}",
    "replace into": f"REPLACE INTO ledger_events (position, {COLUMNS}) {FIRST_AT_SECOND}",
    "upsert": f"INSERT INTO ledger_events ({COLUMNS}) {FIRST_REWRITTEN} "
    "ON CONFLICT (account, event_id) DO UPDATE SET payload = excluded.payload, type = 'x'",
    "update or replace": "UPDATE OR REPLACE ledger_events SET event_id = "
    f"(SELECT event_id FROM ledger_events WHERE position = {SECOND}) WHERE position = {FIRST}",
    "insert or replace a conflict": f"INSERT OR REPLACE INTO ledger_conflicts ({CONFLICT_COLUMNS}) "
    f"SELECT {CONFLICT_REWRITTEN} FROM ledger_conflicts",
    "replace a conflict's id": f"REPLACE INTO ledger_conflicts (id, {CONFLICT_COLUMNS}) "
    "SELECT id, account, 'evt_other', original_position, received_at, source, content_hash, "
    "'[]' FROM ledger_conflicts",
}
POSTGRESQL = {
    "upsert": f"INSERT INTO ledger_events ({COLUMNS}) {FIRST_REWRITTEN} "
    "ON CONFLICT (account, event_id) DO UPDATE SET payload = excluded.payload, type = 'x'",
    "upsert on a taken position": f"INSERT INTO ledger_events (position, {COLUMNS}) "
    f"{FIRST_AT_SECOND} ON CONFLICT (position) DO UPDATE SET event_id = excluded.event_id",
    "merge update": f"MERGE INTO ledger_events t USING ({FIRST_REWRITTEN}) s "
    "ON t.account = s.account AND t.event_id = s.event_id "
    "WHEN MATCHED THEN UPDATE SET payload = s.payload",
    "merge delete": "MERGE INTO ledger_events t USING ledger_events s ON t.position = s.position "
    "WHEN MATCHED THEN DELETE",
    "upsert a conflict": f"INSERT INTO ledger_conflicts ({CONFLICT_COLUMNS}) "
    f"SELECT {CONFLICT_COLUMNS} FROM ledger_conflicts "
    "ON CONFLICT (account, event_id, content_hash) DO UPDATE SET payload = '[]'",
}


def _on(engine_name: str) -> list[str]:
    """The `database` fixture on one engine only, if this run includes it."""
    return [name for name in ENGINES if name == engine_name]


async def _stored(engine: AsyncEngine) -> dict[str, list[Any]]:
    async with engine.connect() as conn:
        return {
            table: [
                tuple(row) for row in await conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))
            ]
            for table in ("ledger_events", "ledger_conflicts")
        }


async def _two_events_and_a_conflict(event_log: EventLog) -> None:
    first = parse_event(
        encode(fresh_id(event_2020("invoice_paid"))), account="a", source=Source.WEBHOOK
    )
    second = parse_event(
        encode(fresh_id(event_2020("charge_succeeded"))), account="a", source=Source.WEBHOOK
    )
    other = event_2020("charge_failed") | {"id": second.event_id}
    rival = parse_event(encode(other), account="a", source=Source.WEBHOOK)
    outcomes = [r.outcome for r in await event_log.append([first, second, rival])]
    assert outcomes == [Outcome.STORED, Outcome.STORED, Outcome.CONFLICT]


async def _leaves_the_ledger_as_it_was(engine: AsyncEngine, event_log: EventLog, sql: str) -> None:
    await _two_events_and_a_conflict(event_log)
    before = await _stored(engine)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql))
    except DBAPIError as exc:
        assert "append-only" in str(exc)  # refused, not failing for some other reason
    assert await _stored(engine) == before


@pytest.mark.parametrize("database", _on("sqlite"), indirect=True)
@pytest.mark.parametrize("statement", SQLITE.values(), ids=SQLITE.keys())
async def test_replace_statements_on_sqlite_leave_stored_rows_as_they_were(
    engine: AsyncEngine, event_log: EventLog, statement: str
) -> None:
    await _leaves_the_ledger_as_it_was(engine, event_log, statement)


@pytest.mark.parametrize("database", _on("postgresql"), indirect=True)
@pytest.mark.parametrize("statement", POSTGRESQL.values(), ids=POSTGRESQL.keys())
async def test_upserts_and_merges_on_postgresql_leave_stored_rows_as_they_were(
    engine: AsyncEngine, event_log: EventLog, statement: str
) -> None:
    await _leaves_the_ledger_as_it_was(engine, event_log, statement)
