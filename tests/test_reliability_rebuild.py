"""A projection can always be rebuilt from the ledger alone: copy nothing but the ledger's
rows into an empty database, rebuild, and get exactly the read models that were built
incrementally from late, duplicated, out-of-order deliveries. On both engines."""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import Source, parse_event
from ledger.event_log import EventLog
from projections.runner import ProjectionRunner
from tests.support.clean_rebuild import dump_projections, rebuilt_from_ledger_alone
from tests.support.databases import PostgresRun, TestDatabase, sqlite_database
from tests.support.deliveries import distinct_events, with_duplicates
from tests.support.feeding import ACCOUNT, chunks, ledger_events, shuffled_with_duplicates
from tests.support.scenarios import ALL_SCENARIOS

LAYOUTS = ("2020-03-02", "2025-03-31.basil")


async def empty_database(
    database: TestDatabase, tmp_path: Path, postgres_run: PostgresRun | None
) -> TestDatabase:
    if database.engine == "sqlite":
        return sqlite_database(tmp_path / "rebuilt")
    assert postgres_run is not None
    return await postgres_run.new_schema()


async def test_the_read_models_are_rebuilt_from_the_ledger_alone(
    database: TestDatabase,
    engine: AsyncEngine,
    event_log: EventLog,
    tmp_path: Path,
    postgres_run: PostgresRun | None,
) -> None:
    rng = random.Random(11)
    scenarios = [
        e
        for name in ("S3", "S5", "S8", "S9")
        for layout in LAYOUTS
        for e in ledger_events(ALL_SCENARIOS[name](layout))
    ]
    generated = [
        parse_event(d.body, account=ACCOUNT, source=Source.WEBHOOK)
        for d in with_duplicates(distinct_events(400, customers=40, seed=11), 0.1, seed=11)
    ]
    runner = ProjectionRunner(engine, batch_size=25)
    batches = chunks(shuffled_with_duplicates(scenarios + generated, rng), rng)
    for n, batch in enumerate(batches, start=1):
        await event_log.append(batch)
        if n % (len(batches) // 4) == 0:  # incremental runs over what has arrived so far
            await runner.catch_up(ACCOUNT)
    await runner.catch_up(ACCOUNT)
    incremental = await dump_projections(engine)

    rebuilt = await rebuilt_from_ledger_alone(
        engine, await empty_database(database, tmp_path, postgres_run)
    )

    assert incremental["mrr_movements"] and incremental["event_routes"]
    assert rebuilt == incremental
