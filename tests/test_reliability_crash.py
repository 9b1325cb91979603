"""A crash loses nothing acknowledged and counts nothing twice: `stripe-ledger serve` on
PostgreSQL is killed with SIGKILL in the middle of a load, restarted, and the sender
redelivers whatever was not answered 2xx, as Stripe does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.clean_rebuild import dump_projections, rebuilt_from_ledger_alone
from tests.support.databases import PostgresRun, TestDatabase
from tests.support.deliveries import Sender, distinct_events, with_duplicates
from tests.support.processes import environment, start_server
from tests.support.reliability import (
    conflicts,
    stored_event_ids,
    until_runner_lock,
    wait_until_projected,
)

EVENTS = 5_000
DUPLICATES = 0.10
CUSTOMERS = 500
WORKERS = ("--workers", "2")

pytestmark = pytest.mark.slow


async def test_a_server_killed_mid_load_loses_no_acknowledged_event_and_stores_none_twice(
    postgres_database: TestDatabase,
    postgres_engine: AsyncEngine,
    postgres_run: PostgresRun,
    tmp_path: Path,
) -> None:
    events = distinct_events(EVENTS, customers=CUSTOMERS, seed=8)
    deliveries = with_duplicates(events, DUPLICATES, seed=8)
    env = environment(postgres_database)
    # Deployed as bench/ingest measures it: uvicorn's supervisor and two worker processes,
    # each with its own projection worker. The kill takes the whole process group.
    server = await asyncio.to_thread(start_server, env, tmp_path, *WORKERS)
    sender = Sender([server.base], deliveries, concurrency=32)
    acknowledged_before_the_crash: list[str] = []
    lost: set[str] = set()

    async def crash_and_restart() -> None:
        nonlocal server
        await sender.acknowledgements(len(deliveries) // 3)
        # While the projection runner is inside a transaction too, so the kill tests its
        # "rows and position commit together" as well as the append's.
        await until_runner_lock(postgres_engine)
        server.kill()
        # Whatever was answered 2xx before the kill was answered by that process; nothing
        # it acknowledged may be missing now, before any redelivery could put it back.
        acknowledged_before_the_crash.extend(sender.acknowledged)
        lost.update(
            set(acknowledged_before_the_crash) - set(await stored_event_ids(postgres_engine))
        )
        # The sender keeps retrying against the dead port while the server comes back.
        server = await asyncio.to_thread(
            start_server, env, tmp_path, *WORKERS, port=int(server.base.rsplit(":", 1)[1])
        )

    try:
        await asyncio.gather(sender.run(), crash_and_restart())
        await wait_until_projected(postgres_engine, give_up_after=60, logs=[server.log_path])
    finally:
        server.stop()

    assert lost == set()
    assert len(deliveries) // 3 <= len(acknowledged_before_the_crash) < len(deliveries)
    assert sender.statuses[None] > 0, "the kill interrupted no request: not mid-load"
    assert set(sender.statuses) <= {200, None}
    stored = await stored_event_ids(postgres_engine)
    assert stored == {e.event_id: 1 for e in events}
    assert await conflicts(postgres_engine) == 0
    live = await dump_projections(postgres_engine)
    assert live["mrr_movements"] and live["payments"]
    assert live == await rebuilt_from_ledger_alone(postgres_engine, await postgres_run.new_schema())
