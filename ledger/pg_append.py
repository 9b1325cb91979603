"""The PostgreSQL append in one statement: a batch goes in as one array per column, through
one prepared `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING` on asyncpg itself,
which also returns, for the rows already there, their position and content hash.

EventLog decides the outcomes; this module only stores. The SQLAlchemy Core path in
ledger/event_log.py is the reference: tests/test_ledger_contract.py runs both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ledger.envelope import NewEvent

Key = tuple[str, str]

# Positions come from the sequence in the order rows reach the INSERT: ORDER BY n keeps
# them in input order (tests/test_ledger_contract.py, positions increase in append order).
# A sub-statement of WITH does not see the rows another one inserts, so `existing` reads
# the rows that were there before this statement: for a key `stored` skipped, the row
# already committed (no other appender runs: the caller holds the append lock). The
# LATERAL's `s.position IS NULL` gates its index scan to the skipped keys alone.
INSERT_EVENTS = """
WITH batch AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::boolean[], $8::text[], $9::timestamptz[], $10::text[], $11::text[], $12::text[]
    ) WITH ORDINALITY AS b(
        account, event_id, type, object_type, object_id, customer_id,
        livemode, api_version, created, source, content_hash, payload, n
    )
), stored AS (
    INSERT INTO ledger_events (
        account, event_id, type, object_type, object_id, customer_id,
        livemode, api_version, created, received_at, source, content_hash, payload
    )
    SELECT account, event_id, type, object_type, object_id, customer_id,
        livemode, api_version, created, $13::timestamptz, source, content_hash, payload
    FROM batch ORDER BY n
    ON CONFLICT (account, event_id) DO NOTHING
    RETURNING position, account, event_id
)
SELECT b.account, b.event_id, s.position AS stored, e.position AS existing, e.content_hash
FROM batch b
LEFT JOIN stored s ON s.account = b.account AND s.event_id = b.event_id
LEFT JOIN LATERAL (
    SELECT position, content_hash FROM ledger_events
    WHERE s.position IS NULL AND account = b.account AND event_id = b.event_id
) e ON true
"""

INSERT_CONFLICTS = """
INSERT INTO ledger_conflicts (
    account, event_id, original_position, received_at, source, content_hash, payload
)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[], $6::text[],
    $7::text[]
)
ON CONFLICT DO NOTHING
"""


def event_columns(events: Sequence[NewEvent], received_at: datetime) -> list[Any]:
    """The arguments of INSERT_EVENTS: one list per column, then the receive time."""
    return [
        [e.account for e in events],
        [e.event_id for e in events],
        [e.type for e in events],
        [e.object_type for e in events],
        [e.object_id for e in events],
        [e.customer_id for e in events],
        [e.livemode for e in events],
        [e.api_version for e in events],
        [e.created for e in events],
        [e.source.value for e in events],
        [e.content_hash for e in events],
        [e.payload for e in events],
        received_at,
    ]


def conflict_columns(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """The arguments of INSERT_CONFLICTS, from event_log's conflict rows."""
    names = (
        "account",
        "event_id",
        "original_position",
        "received_at",
        "source",
        "content_hash",
        "payload",
    )
    return [[row[name] for row in rows] for name in names]


def split_rows(
    rows: Sequence[Any],
) -> tuple[dict[Key, int], dict[Key, tuple[int, str]]]:
    """INSERT_EVENTS' rows as (stored: key -> position, existing: key -> (position, hash))."""
    stored: dict[Key, int] = {}
    existing: dict[Key, tuple[int, str]] = {}
    for row in rows:
        key = (row["account"], row["event_id"])
        if row["stored"] is not None:
            stored[key] = row["stored"]
        elif row["existing"] is not None:
            existing[key] = (row["existing"], row["content_hash"])
    return stored, existing
