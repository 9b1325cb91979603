"""Deriving a chunk of customers so that one customer's failure stays with that customer.

Each customer's rows are derived from its events alone; an exception while doing so, or a
row that would not fit its table, fails that customer only (it is quarantined by the
runner, see projections/quarantine.py) and every other customer of the chunk goes on.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from sqlalchemy import Table

from ledger.event_log import StoredEvent, row_to_event
from ledger.schema import CUSTOMER_READ_MODELS
from projections.account_config import AccountConfig
from projections.activity import activity_read_model
from projections.cash import cash_rows_of
from projections.customer_facts import customer_facts_of
from projections.customer_history import derive_customer_history
from projections.read_events import read_events
from projections.read_model_rows import rows_for
from projections.row_checks import RowRejected, check_rows

Rows = dict[Table, list[dict[str, Any]]]
# Where an error is located for the projection-errors table: our own code, not a library.
_OUR_PACKAGES = ("projections", "ledger")


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a customer could not be derived: the event that made it fail (all of its
    events when no single one can be named) and a one-line error without payload data."""

    event_ids: tuple[str, ...]
    error: str


@dataclass
class DerivedChunk:
    rows: Rows = field(default_factory=lambda: {t: [] for t in CUSTOMER_READ_MODELS})
    by_customer: dict[str, Rows] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    event_ids: dict[str, tuple[str, ...]] = field(default_factory=dict)


def derive_chunk(account: str, rows: Sequence[Any], config: AccountConfig) -> DerivedChunk:
    """Every read-model row of the customers whose events these are (grouped by route,
    ordered by position), and a Failure for each customer that could not be derived."""
    chunk = DerivedChunk()
    for customer_id, group in groupby(rows, key=lambda row: str(row.route)):
        events = [row_to_event(row) for row in group]
        chunk.event_ids[customer_id] = tuple(dict.fromkeys(e.event_id for e in events))
        try:
            derived = derive_customer(account, customer_id, events, config)
        except Exception as exc:  # any failure of one customer's events is that customer's
            chunk.failures[customer_id] = Failure(
                _culprit(account, customer_id, events, config) or chunk.event_ids[customer_id],
                describe(exc),
            )
            continue
        chunk.by_customer[customer_id] = derived
        for table, table_rows in derived.items():
            chunk.rows[table].extend(table_rows)
    return chunk


def derive_customer(
    account: str, customer_id: str, events: Sequence[StoredEvent], config: AccountConfig
) -> Rows:
    """One customer's rows, each checked against its table; raises on any failure."""
    read = read_events(events)
    facts = customer_facts_of(account, customer_id, read)
    history = derive_customer_history(facts, config.settings)
    derived = (
        rows_for(facts, history)
        | cash_rows_of(account, customer_id, read)
        | activity_read_model(facts, history)
    )
    for table, table_rows in derived.items():
        check_rows(table, table_rows)
    return derived


def _culprit(
    account: str, customer_id: str, events: Sequence[StoredEvent], config: AccountConfig
) -> tuple[str, ...] | None:
    """The event whose addition makes the derivation fail: a bisection over prefixes of the
    events in ledger order (the empty prefix derives; the whole fails). log2(n) derivations,
    and only for a customer that failed. None when even no events fail: no event is to blame."""
    try:
        derive_customer(account, customer_id, [], config)
    except Exception:
        return None
    works, fails = 0, len(events)
    while fails - works > 1:
        middle = (works + fails) // 2
        try:
            derive_customer(account, customer_id, events[:middle], config)
            works = middle
        except Exception:
            fails = middle
    if fails == 0:
        return None
    return (events[fails - 1].event_id,)


def describe(exc: BaseException) -> str:
    """One line naming the error and where our code met it, never its message (which may
    quote payload values or SQL parameters), except for our own row checks."""
    if isinstance(exc, RowRejected):
        return f"RowRejected: {exc}"
    where = None
    for frame in traceback.extract_tb(exc.__traceback__):
        parts = Path(frame.filename).parts
        for package in _OUR_PACKAGES:
            if package in parts:
                relative = "/".join(parts[len(parts) - parts[::-1].index(package) - 1 :])
                where = f"{relative}:{frame.lineno} ({frame.name})"
    return f"{type(exc).__name__} at {where}" if where else type(exc).__name__
