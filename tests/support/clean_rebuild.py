"""The read models a clean rebuild gives: the ledger's rows, and nothing else, copied into a
fresh database, then `ProjectionRunner.rebuild`. What a live server derived incrementally
(through crashes, races and redeliveries) must equal this."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import create_engine
from ledger.migrate import upgrade
from ledger.schema import event_routes, ledger_events, object_owners
from projections.runner import ProjectionRunner
from tests.support.databases import TestDatabase
from tests.support.feeding import dump_read_models

_COPY_BATCH = 2000


async def dump_projections(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every customer read model (see feeding.dump_read_models) and the routing tables."""
    dumped = await dump_read_models(engine)
    async with engine.connect() as conn:
        for table in (event_routes, object_owners):
            rows = await conn.execute(select(table))
            dumped[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return dumped


async def copy_ledger(source: AsyncEngine, target: AsyncEngine) -> int:
    """Copy every ledger row, positions included, into a migrated empty database."""
    copied = 0
    async with source.connect() as reading:
        result = await reading.stream(select(ledger_events).order_by(ledger_events.c.position))
        async for rows in result.partitions(_COPY_BATCH):
            async with target.begin() as writing:
                await writing.execute(ledger_events.insert(), [dict(r._mapping) for r in rows])
            copied += len(rows)
    return copied


async def rebuilt_from_ledger_alone(
    source: AsyncEngine, fresh: TestDatabase, account: str = "default"
) -> dict[str, list[tuple[Any, ...]]]:
    """The projections a rebuild derives in `fresh` from a copy of `source`'s ledger."""
    target = create_engine(fresh.url, schema=fresh.schema)
    try:
        await upgrade(target)
        await copy_ledger(source, target)
        await ProjectionRunner(target).rebuild(account)
        return await dump_projections(target)
    finally:
        await target.dispose()
