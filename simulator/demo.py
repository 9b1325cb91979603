"""The demo: a simulated account in a ledger of its own, its projections built, and the
figures of its last twelve complete months, computed as `metrics --json` computes them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.migrate import upgrade
from projections import metrics as figures
from projections.account_config import load_config
from projections.fx import load_rates
from projections.periods import add_months, month_start
from projections.runner import ProjectionRunner
from simulator.fx_rates import store_simulated_rates
from simulator.life import AccountLife, end_of
from simulator.outputs import Delivered, append_to_ledger

SHOWN_MONTHS = 12

# Written into the SQLite header of every demo ledger (PRAGMA application_id, bytes 68-71)
# so that the demo replaces only its own files, never a real ledger given as --database.
DEMO_APPLICATION_ID = 0x534C_444D  # "SLDM"
_SQLITE_MAGIC = b"SQLite format 3\x00"


class NotADemoLedger(ValueError):
    """The path holds something the demo did not write; the message says what."""


def replace_demo_ledger(path: Path) -> None:
    """Remove the demo ledger at `path` (and its WAL files) so the demo starts from
    nothing; raise NotADemoLedger, touching nothing, when `path` holds anything else."""
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise NotADemoLedger("it is not a file")
        with path.open("rb") as file:
            header = file.read(100)
        if not header.startswith(_SQLITE_MAGIC):
            raise NotADemoLedger("it is not a SQLite database")
        if len(header) < 72 or int.from_bytes(header[68:72], "big") != DEMO_APPLICATION_ID:
            raise NotADemoLedger("it is a SQLite database the demo did not make (a real ledger?)")
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)


def mark_demo_ledger(path: Path) -> None:
    """Create `path` as an empty SQLite file marked as a demo ledger. Written before the
    engine switches it to WAL, the mark is in the main file even if the demo is killed."""
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
        connection.commit()
    finally:
        connection.close()


@dataclass(frozen=True, slots=True)
class DemoHistory:
    customers: int
    months: int
    seed: int
    start: datetime
    end: datetime


def history_ending_today(customers: int, months: int, seed: int, now: datetime) -> DemoHistory:
    """A history that starts `months` months before today and runs up to today (UTC)."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = add_months(today, -months)
    return DemoHistory(customers, months, seed, start, end_of(months, start))


async def build_demo(
    engine: AsyncEngine,
    history: DemoHistory,
    account: str,
    *,
    progress: Callable[[int], None] = lambda _: None,
) -> Delivered:
    """Fill an empty ledger with the simulated account, its exchange rates into USD and
    its projections."""
    await upgrade(engine)
    life = AccountLife(history.customers, history.months, history.seed, start=history.start)

    def counted() -> Any:
        for count, record in enumerate(life, start=1):
            if count % 5000 == 0:
                progress(count)
            yield record

    delivered = await append_to_ledger(counted(), engine, account)
    await store_simulated_rates(engine, history.start.date(), history.end.date(), history.seed)
    await ProjectionRunner(engine, reporting_currency="usd").catch_up(account, now=history.end)
    return delivered


async def last_months(
    engine: AsyncEngine, account: str, end: datetime, count: int = SHOWN_MONTHS
) -> list[dict[str, Any]]:
    """The period figures of the `count` complete months before `end`'s month."""
    last = month_start(end)
    async with engine.connect() as conn:
        config = await load_config(conn, account, "usd")
        rates = await load_rates(conn, config.reporting_currency)
        return [
            await figures.period(
                conn, account, add_months(last, -n), add_months(last, 1 - n), config, rates
            )
            for n in range(count, 0, -1)
        ]
