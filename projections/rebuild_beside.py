"""Rebuilding an account beside its live read models, then swapping the result in.

The rebuild derives on one connection of its own whose statements are redirected
(SQLAlchemy's schema_translate_map) to temporary copies of the tables the derivation writes,
with temporary views over the tables it only reads. Its transactions write nothing that a
webhook or the live runner waits on; only the swap, one short transaction, writes the live
tables. Temporary objects belong to the session, so the connection is discarded afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, MetaData, Table, delete, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import is_postgres
from ledger.schema import (
    CUSTOMER_READ_MODELS,
    event_routes,
    metadata,
    monthly_metrics,
    object_owners,
    projection_errors,
)

# Every table a rebuild writes, all of them keyed by account: built beside, then swapped.
# projection_errors too: a rebuild's quarantine (projections/quarantine.py) replaces the old.
SWAPPED: tuple[Table, ...] = (
    *CUSTOMER_READ_MODELS,
    event_routes,
    object_owners,
    monthly_metrics,
    projection_errors,
)


@dataclass
class Beside:
    """The rebuild's connection, with the schema its live tables are in and the schema of
    its temporary copies ("main"/"temp" on SQLite, the current schema/"pg_temp" on
    PostgreSQL)."""

    conn: AsyncConnection
    live: str
    shadow: str

    @asynccontextmanager
    async def swap_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on the live tables (statements are no longer redirected)."""
        await self.conn.execution_options(
            schema_translate_map={None: self.live}, sqlite_begin="IMMEDIATE"
        )
        async with self.conn.begin():
            yield self.conn

    async def replace_live_rows(self, account: str) -> None:
        """Inside swap_transaction: the account's live rows become the copies' rows.
        Surrogate ids are left to the live tables (the copies' would collide with other
        accounts' rows)."""
        for table in SWAPPED:
            columns = [c.name for c in table.c if c.autoincrement is not True]
            copy = table.to_metadata(MetaData(), schema=self.shadow)
            await self.conn.execute(delete(table).where(table.c.account == account))
            await self.conn.execute(
                insert(table).from_select(columns, select(*(copy.c[name] for name in columns)))
            )

    async def keep_quarantined_rows(self, account: str) -> None:
        """In a rebuild transaction, before the monthly figures: each customer the rebuild
        quarantined (it has no rows in the copies) keeps the live rows it had, as catching
        up leaves them (projections/quarantine.py), and the figures count them."""
        held = select(projection_errors.c.customer_id).where(projection_errors.c.account == account)
        for table in CUSTOMER_READ_MODELS:
            columns = [c.name for c in table.c if c.autoincrement is not True]
            live = table.to_metadata(MetaData(), schema=self.live)
            rows = select(*(live.c[name] for name in columns)).where(
                live.c.account == account, live.c.customer_id.in_(held)
            )
            await self.conn.execute(insert(table).from_select(columns, rows))


@asynccontextmanager
async def beside(engine: AsyncEngine) -> AsyncIterator[Beside]:
    """A connection whose statements read the live ledger and settings and write
    temporary copies of the SWAPPED tables, empty to begin with."""
    async with engine.connect() as conn:
        try:
            postgres = is_postgres(conn)
            shadow = "pg_temp" if postgres else "temp"
            async with conn.begin():
                live = (
                    str(await conn.scalar(text("SELECT current_schema()"))) if postgres else "main"
                )
                await conn.run_sync(_create_copies, live, shadow)
            await conn.execution_options(schema_translate_map={None: shadow})
            yield Beside(conn, live, shadow)
        finally:
            # Its temporary tables would shadow the live ones for whoever used it next.
            await conn.invalidate()


def _create_copies(sync: Connection, live: str, shadow: str) -> None:
    quote = sync.dialect.identifier_preparer.quote
    existing = set(inspect(sync).get_table_names(schema=live))
    copied = {table.name for table in SWAPPED}
    for table in metadata.sorted_tables:
        if table.name in existing and table.name not in copied:
            sync.exec_driver_sql(
                f"CREATE TEMPORARY VIEW {quote(table.name)} AS "
                f"SELECT * FROM {quote(live)}.{quote(table.name)}"
            )
    # execution_options changes this connection in place: the DDL names the copies' schema.
    sync.execution_options(schema_translate_map={None: shadow})
    metadata.create_all(sync, tables=list(SWAPPED), checkfirst=False)
