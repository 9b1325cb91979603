"""Several processes on one PostgreSQL: server processes appending side by side lose
nothing, store nothing twice and make positions visible in commit order; projection
runners take turns on an advisory lock, so a second one waits instead of corrupting."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import create_engine
from ledger.envelope import NewEvent, Source, parse_event
from ledger.event_log import EventLog
from projections.runner import ProjectionRunner, _lock
from tests.support.clean_rebuild import dump_projections, rebuilt_from_ledger_alone
from tests.support.databases import PostgresRun, TestDatabase
from tests.support.deliveries import Delivery, Sender, distinct_events, with_duplicates
from tests.support.processes import COMMAND, environment, start_server
from tests.support.reliability import (
    TailingReader,
    conflicts,
    projected_position,
    runner_locks,
    stored_event_ids,
    until_runner_lock,
    wait_until_projected,
)

ACCOUNT = "default"


def appendable(deliveries: list[Delivery]) -> list[NewEvent]:
    return [parse_event(d.body, account=ACCOUNT, source=Source.WEBHOOK) for d in deliveries]


@pytest.mark.slow
async def test_two_server_processes_append_side_by_side_without_loss_duplicates_or_gaps(
    postgres_database: TestDatabase,
    postgres_engine: AsyncEngine,
    postgres_run: PostgresRun,
    tmp_path: Path,
) -> None:
    events = distinct_events(3_000, customers=300, seed=2)
    deliveries = with_duplicates(events, 0.10, seed=2)
    env = environment(postgres_database)
    servers = [
        await asyncio.to_thread(start_server, env, tmp_path, log_name=f"serve-{n}") for n in (1, 2)
    ]
    # Round-robin over the two: most redeliveries reach the other process than the
    # first delivery did, and race it.
    sender = Sender([s.base for s in servers], deliveries, concurrency=32)
    reader = TailingReader(postgres_engine)
    try:
        tailing = asyncio.create_task(reader.run())
        await sender.run()
        reader.stop()
        await tailing
        await wait_until_projected(
            postgres_engine, give_up_after=60, logs=[s.log_path for s in servers]
        )
    finally:
        for server in servers:
            server.stop()

    assert {a.base for a in sender.attempts if a.status == 200} == {s.base for s in servers}
    assert set(sender.statuses) == {200}
    outcomes = [json.loads(a.text)["outcome"] for a in sender.attempts if a.status == 200]
    assert outcomes.count("stored") == len(events)
    assert outcomes.count("duplicate") == len(deliveries) - len(events)
    assert await stored_event_ids(postgres_engine) == {e.event_id: 1 for e in events}
    assert await conflicts(postgres_engine) == 0
    everything = [e.position for e in await EventLog(postgres_engine).read_after(0, limit=100_000)]
    assert reader.reads_with_news > 10, "the reader did not tail the load"
    assert reader.seen == everything
    assert await dump_projections(postgres_engine) == await rebuilt_from_ledger_alone(
        postgres_engine, await postgres_run.new_schema()
    )


async def test_a_second_runner_in_another_process_waits_for_the_lock_and_writes_nothing(
    postgres_database: TestDatabase, postgres_engine: AsyncEngine, tmp_path: Path
) -> None:
    await EventLog(postgres_engine).append(appendable(distinct_events(300, customers=30)))
    first = await postgres_engine.connect()
    try:
        transaction = await first.begin()
        await _lock(first, ACCOUNT)  # the lock each runner step takes: a first runner at work
        second = await asyncio.to_thread(
            subprocess.Popen,
            [COMMAND, "rebuild", "--account", ACCOUNT],
            env=environment(postgres_database),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        await until_runner_lock(postgres_engine, held=1, awaited=1)
        await asyncio.sleep(1.0)
        waiting, written = second.poll() is None, await projected_position(postgres_engine)
        await transaction.commit()
    finally:
        await first.close()
    output, _ = await asyncio.to_thread(second.communicate, timeout=60)

    assert waiting and written == 0
    assert second.returncode == 0, output
    assert (
        await projected_position(postgres_engine) == await EventLog(postgres_engine).last_position()
    )
    assert await runner_locks(postgres_engine) == (0, 0)


async def test_runners_racing_over_one_account_leave_what_one_rebuild_gives(
    postgres_database: TestDatabase,
    postgres_engine: AsyncEngine,
    postgres_run: PostgresRun,
) -> None:
    events = appendable(distinct_events(600, customers=60, seed=5))
    batches = [events[i : i + 50] for i in range(0, len(events), 50)]
    log = EventLog(postgres_engine)
    # Each runner on its own engine: its own connections, as in separate processes.
    engines = [
        create_engine(postgres_database.url, schema=postgres_database.schema) for _ in range(2)
    ]
    runners = [ProjectionRunner(e, batch_size=40) for e in engines]
    appended = asyncio.Event()

    async def append_all() -> None:
        for batch in batches:
            await log.append(batch)
            await asyncio.sleep(0)
        appended.set()

    async def keep_catching_up(runner: ProjectionRunner) -> None:
        while not appended.is_set():
            await runner.catch_up(ACCOUNT)
        await runner.catch_up(ACCOUNT)

    try:
        await asyncio.gather(append_all(), *(keep_catching_up(r) for r in runners))
    finally:
        for e in engines:
            await e.dispose()

    assert await projected_position(postgres_engine) == await log.last_position()
    assert await dump_projections(postgres_engine) == await rebuilt_from_ledger_alone(
        postgres_engine, await postgres_run.new_schema()
    )
