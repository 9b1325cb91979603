"""The migrated database has the indexes the code relies on, on both engines."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.schema import CUSTOMER_READ_MODELS, metadata


def _indexed_prefixes(sync_conn: Any, table: str) -> set[tuple[str, ...]]:
    inspector = inspect(sync_conn)
    found = {tuple(i["column_names"]) for i in inspector.get_indexes(table)}
    found.add(tuple(inspector.get_pk_constraint(table)["constrained_columns"]))
    return {columns[:2] for columns in found}


async def test_every_customer_read_model_is_indexed_by_account_and_customer(
    engine: AsyncEngine,
) -> None:
    # The runner deletes and reads a chunk of customers' rows by customer id on every
    # catch-up: without the index each chunk scans the whole account.
    async with engine.connect() as conn:
        for table in CUSTOMER_READ_MODELS:
            prefixes = await conn.run_sync(_indexed_prefixes, table.name)
            assert ("account", "customer_id") in prefixes, table.name


async def test_the_migrations_create_every_index_the_schema_declares(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            created = await conn.run_sync(
                lambda c, name=table.name: {i["name"] for i in inspect(c).get_indexes(name)}
            )
            declared = {index.name for index in table.indexes}
            assert declared <= created, table.name
