"""Applying the packaged Alembic migrations, and telling whether a database is current."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import MIGRATION_LOCK_KEY, is_postgres
from ledger.roles import is_service_role, regrant_service_roles
from ledger.settings import ConfigError

# A filesystem path, so the migrations work from any directory once installed.
SCRIPT_LOCATION = str(Path(__file__).resolve().parent / "migrations")


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str | None:
    """The newest revision shipped (the scripts do not change while a process runs)."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe to call from several processes."""
    async with engine.begin() as conn:
        if is_postgres(conn):
            # Two servers starting together must not both run the same DDL.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        if await is_service_role(conn):
            # Migrations run as the owner; the service role may only find them done.
            current, head = await conn.run_sync(_current), head_revision()
            if current != head:
                raise ConfigError(
                    f"the database schema is at revision {current} and this release needs "
                    f"{head}: run `stripe-ledger db upgrade` as the owner of the ledger's tables"
                )
            return
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), "head"))
        # In the same transaction: a table a revision added is never left ungranted.
        await regrant_service_roles(conn)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await revision_of(conn)


async def revision_of(conn: AsyncConnection) -> str | None:
    return await conn.run_sync(_current)


async def is_current(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()
