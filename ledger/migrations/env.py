"""Alembic environment: migrations run on a connection handed in by ledger.migrate.

Run through `stripe-ledger db upgrade` (or `serve`, which upgrades first). The plain
`alembic` command also works from the repository root (alembic.ini), using the
configured LEDGER_DATABASE_URL.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from ledger.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_settings() -> None:
    from ledger.engine import engine_from_settings
    from ledger.settings import load_settings

    engine = engine_from_settings(load_settings())
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_from_settings())
