"""A rebuild does not stop ingestion: `stripe-ledger rebuild` in one process while
`stripe-ledger serve` on the same database (on SQLite, the same file) keeps receiving
webhooks. Every delivery is answered 2xx, and once the runner has caught up, the read
models and the monthly figures are what a clean rebuild of the ledger gives. And a runner
step under way when a rebuild swaps its rows in does not save its position over them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import projections.runner as runner_module
from ledger.engine import create_engine
from ledger.envelope import NewEvent, Source, parse_event
from ledger.event_log import EventLog
from ledger.migrate import upgrade
from ledger.schema import customers, fx_rates, monthly_metrics
from projections.account_config import AccountConfig
from projections.runner import ProjectionRunner
from tests.support.clean_rebuild import copy_ledger, dump_projections
from tests.support.databases import PostgresRun, TestDatabase, sqlite_database
from tests.support.deliveries import Delivery, distinct_events
from tests.support.processes import COMMAND, environment, run, start_server
from tests.support.reliability import wait_until_projected
from tests.support.signing import signed

# A ledger of about 32,000 simulated events: its rebuild takes several seconds.
SIMULATED = ["simulate", "--customers", "400", "--months", "12", "--into-ledger"]
SENDERS = 4
# Short, so a webhook kept waiting by the rebuild is answered 503 rather than late; longer
# than the live runner holds SQLite's writer for a round (its monthly refresh, ~1 s here).
COMMIT_TIMEOUT = "4"


def recent_deliveries(tmp_path: Path, env: dict[str, str]) -> list[bytes]:
    """Another simulated account's last month, as webhooks: recent events, so the live
    runner's monthly refresh after each is short (it runs from the month they changed)."""
    start = (datetime.now(UTC) - timedelta(days=45)).date().isoformat()
    jsonl = tmp_path / "recent.jsonl"
    args = ["simulate", "--customers", "200", "--months", "1", "--seed", "9", "--start", start]
    written = run([*args, "--jsonl", str(jsonl)], env, tmp_path)
    assert written.returncode == 0, written.stderr
    lines = jsonl.read_bytes().splitlines()
    return [line for line in lines if not line.startswith(b'{"id":"evt_snap_')]


async def post_while_running(
    base: str, deliveries: list[bytes], process: subprocess.Popen[bytes]
) -> list[int | None]:
    """Post deliveries, a few at a time, for as long as `process` runs (from the first
    again once all were sent: redeliveries are answered 2xx too); every answer's status
    (None: no HTTP answer)."""
    pending = itertools.cycle(deliveries)
    statuses: list[int | None] = []

    async def sender() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            while process.poll() is None:
                delivery = next(pending)
                try:
                    response = await client.post(
                        f"{base}/webhooks/stripe", content=delivery, headers=signed(delivery)
                    )
                    statuses.append(response.status_code)
                except httpx.TransportError:
                    statuses.append(None)
                await asyncio.sleep(0.05)

    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return statuses


async def monthly_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    columns = [c for c in monthly_metrics.c if c.name != "computed_at"]
    async with engine.connect() as conn:
        return sorted(tuple(row) for row in await conn.execute(select(*columns)))


async def clean_database(
    database: TestDatabase, tmp_path: Path, postgres_run: PostgresRun | None
) -> TestDatabase:
    if database.engine == "sqlite":
        return sqlite_database(tmp_path / "clean")
    assert postgres_run is not None
    return await postgres_run.new_schema()


async def clean_rebuild(
    source: AsyncEngine, fresh: TestDatabase
) -> tuple[dict[str, list[tuple[Any, ...]]], list[tuple[Any, ...]]]:
    """The projections and monthly figures a rebuild gives in `fresh` from a copy of the
    ledger and of the exchange rates the simulator stored (the months need them)."""
    target = create_engine(fresh.url, schema=fresh.schema)
    try:
        await upgrade(target)
        await copy_ledger(source, target)
        async with source.connect() as reading:
            rates = [dict(row._mapping) for row in await reading.execute(select(fx_rates))]
        async with target.begin() as writing:
            await writing.execute(fx_rates.insert(), rates)
        await ProjectionRunner(target).rebuild("default")
        return await dump_projections(target), await monthly_rows(target)
    finally:
        await target.dispose()


@pytest.mark.slow
async def test_webhooks_posted_throughout_a_rebuild_are_all_answered_2xx(
    database: TestDatabase,
    engine: AsyncEngine,
    tmp_path: Path,
    postgres_run: PostgresRun | None,
) -> None:
    env = environment(database, LEDGER_COMMIT_TIMEOUT_SECONDS=COMMIT_TIMEOUT)
    simulated = await asyncio.to_thread(run, SIMULATED, env, tmp_path)
    assert simulated.returncode == 0, simulated.stderr
    deliveries = await asyncio.to_thread(recent_deliveries, tmp_path, env)
    server = await asyncio.to_thread(start_server, env, tmp_path)
    try:
        rebuild = await asyncio.to_thread(
            subprocess.Popen,
            [COMMAND, "rebuild"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            statuses = await post_while_running(server.base, deliveries, rebuild)
        finally:
            output = (await asyncio.to_thread(rebuild.communicate, timeout=300))[0].decode()
        await wait_until_projected(engine, give_up_after=120, logs=[server.log_path])
        live = await dump_projections(engine)
        clean = await clean_database(database, tmp_path, postgres_run)
        rebuilt, clean_months = await clean_rebuild(engine, clean)
        # The runner refreshes the months just after saving its position: a bounded wait.
        deadline = time.monotonic() + 30
        while (live_months := await monthly_rows(engine)) != clean_months:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        server.stop()

    assert rebuild.returncode == 0, output
    assert len(statuses) >= 50, "too few deliveries met the rebuild"
    assert collections.Counter(statuses) == {200: len(statuses)}
    assert live == rebuilt
    assert live_months == clean_months and clean_months


def appendable(deliveries: list[Delivery]) -> list[NewEvent]:
    return [parse_event(d.body, account="default", source=Source.WEBHOOK) for d in deliveries]


class PausedRebuild(ProjectionRunner):
    """A rebuild that waits once its head is fixed, and again between its swap and its
    catch-up, so the test can interleave a live runner's step."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.head_fixed, self.go_on = asyncio.Event(), asyncio.Event()
        self.swapped, self.catch_up_now = asyncio.Event(), asyncio.Event()

    async def config(self, conn: AsyncConnection, account: str) -> AccountConfig:
        if not self.head_fixed.is_set():  # its first call, just after the head was read
            self.head_fixed.set()
            await self.go_on.wait()
        return await super().config(conn, account)

    async def catch_up(self, account: str, *, now: datetime | None = None) -> int:
        self.swapped.set()
        await self.catch_up_now.wait()
        return await super().catch_up(account, now=now)


async def test_a_runner_step_under_way_across_a_rebuilds_swap_does_not_save_its_position(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(engine)
    await log.append(appendable(distinct_events(30, customers=3, seed=21)))
    live = ProjectionRunner(engine)
    await live.catch_up("default")
    known = {e.customer_id for e in appendable(distinct_events(30, customers=3, seed=21))}
    late = next(
        e
        for e in appendable(distinct_events(60, customers=60, seed=22))
        # A subscription or customer event: its ids are the customer's own (the other
        # kinds' ids depend on the event's serial, and would collide with the first 30's).
        if e.type.startswith("customer.") and e.customer_id not in known
    )
    # The live step's third write transaction is its last: the one that saves its position
    # (the first routed the late event, the second derived its customer).
    real, calls, stepping = runner_module.write_transaction, [0], asyncio.Event()
    at_save, save_now = asyncio.Event(), asyncio.Event()

    @contextlib.asynccontextmanager
    async def watched(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        if stepping.is_set() and asyncio.current_task() is live_task:
            calls[0] += 1
            if calls[0] == 3:
                at_save.set()
                await save_now.wait()
        async with real(engine) as conn:
            yield conn

    monkeypatch.setattr(runner_module, "write_transaction", watched)
    rebuilding = PausedRebuild(engine)
    rebuild_task = asyncio.create_task(rebuilding.rebuild("default"))
    await rebuilding.head_fixed.wait()  # the rebuild will not see the late event
    await log.append([late])
    stepping.set()
    live_task = asyncio.create_task(live.catch_up("default"))
    await at_save.wait()  # derived the late customer, about to save its position
    rebuilding.go_on.set()
    await rebuilding.swapped.wait()  # its rows, without the late customer, are live
    save_now.set()
    await live_task
    rebuilding.catch_up_now.set()
    await rebuild_task

    async with engine.connect() as conn:
        found = await conn.scalar(
            select(func.count()).where(customers.c.customer_id == late.customer_id)
        )
    assert found == 1
    assert await live.position("default") == await log.last_position()
