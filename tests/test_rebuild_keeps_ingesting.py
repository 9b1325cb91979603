"""A rebuild does not stop ingestion: `stripe-ledger rebuild` in one process while
`stripe-ledger serve` on the same database (on SQLite, the same file) keeps receiving
webhooks. Every delivery is answered 2xx, and once the runner has caught up, the read
models and the monthly figures are what a clean rebuild of the ledger gives."""

from __future__ import annotations

import asyncio
import collections
import itertools
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import create_engine
from ledger.migrate import upgrade
from ledger.schema import fx_rates, monthly_metrics
from projections.runner import ProjectionRunner
from tests.support.clean_rebuild import copy_ledger, dump_projections
from tests.support.databases import PostgresRun, TestDatabase, sqlite_database
from tests.support.processes import COMMAND, environment, run, start_server
from tests.support.reliability import wait_until_projected
from tests.support.signing import signed

pytestmark = pytest.mark.slow

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
