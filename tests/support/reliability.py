"""What the reliability tests look at from outside the server: the ledger's rows, the
projections' progress, and a reader tailing the ledger by position as a consumer would."""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.event_log import EventLog
from ledger.schema import ledger_conflicts, ledger_events, projection_positions
from projections.runner import _RUNNER_LOCK_CLASS, PROJECTION


async def stored_event_ids(engine: AsyncEngine) -> collections.Counter[str]:
    """How many ledger rows each event id has."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_events.c.event_id, func.count()).group_by(ledger_events.c.event_id)
        )
        return collections.Counter({event_id: count for event_id, count in rows})


async def conflicts(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(ledger_conflicts)) or 0)


async def projected_position(engine: AsyncEngine, account: str = "default") -> int:
    p = projection_positions.c
    async with engine.connect() as conn:
        value = await conn.scalar(
            select(p.position).where(p.projection == PROJECTION, p.account == account)
        )
    return int(value or 0)


async def wait_until_projected(
    engine: AsyncEngine,
    account: str = "default",
    give_up_after: float = 120.0,
    logs: Sequence[Path] = (),
) -> float:
    """Wait until the projections have read the whole ledger; returns the seconds waited.
    Giving up, it quotes the servers' `logs` on why their projection workers failed."""
    started = time.monotonic()
    last = await EventLog(engine).last_position()
    while (position := await projected_position(engine, account)) < last:
        if time.monotonic() - started > give_up_after:
            failures = collections.Counter(
                json.loads(line).get("error")
                for log in logs
                for line in log.read_text().splitlines()
                if '"projections_failed"' in line
            )
            raise TimeoutError(
                f"projections at {position} of {last} after {give_up_after:.0f} s; "
                f"the workers' projections_failed errors: {dict(failures)}"
            )
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def runner_locks(engine: AsyncEngine) -> tuple[int, int]:
    """(held, awaited): projection runner advisory locks in this database right now, the
    ones granted to a session and the ones a session is blocked on."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT granted, count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = :cls AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "GROUP BY granted"
            ),
            {"cls": _RUNNER_LOCK_CLASS},
        )
        counts = {granted: int(n) for granted, n in rows}
    return counts.get(True, 0), counts.get(False, 0)


async def until_runner_lock(
    engine: AsyncEngine, *, held: int = 1, awaited: int = 0, give_up_after: float = 30.0
) -> None:
    """Wait until at least `held` runner locks are granted and `awaited` are waited on."""
    deadline = time.monotonic() + give_up_after
    while True:
        now_held, now_awaited = await runner_locks(engine)
        if now_held >= held and now_awaited >= awaited:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"runner locks: {now_held} held, {now_awaited} awaited")
        await asyncio.sleep(0.002)


class TailingReader:
    """Reads `position > last` over and over, as a downstream consumer would, and keeps
    every position it saw in the order it saw them. If a position became visible after a
    higher one, this reader has already moved past it: it is missing from `seen`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._log = EventLog(engine)
        self.seen: list[int] = []
        self.reads_with_news = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        last = 0
        while True:
            finishing = self._stop.is_set()  # one more read after the writers stop
            batch = await self._log.read_after(last, limit=5000)
            if batch:
                self.seen.extend(e.position for e in batch)
                last = batch[-1].position
                self.reads_with_news += 1
            elif finishing:
                return
            else:
                await asyncio.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
