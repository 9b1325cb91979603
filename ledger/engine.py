"""Opening the database: one async engine per event loop, SQLite or PostgreSQL.

Both engines sit behind SQLAlchemy; the differences that matter for correctness
(SQLite's locking, PostgreSQL's advisory locks) are handled here and nowhere else.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ledger.settings import Settings

# Arbitrary but fixed keys for PostgreSQL advisory locks (they are per database).
APPEND_LOCK_KEY = 0x5354_4C47  # "STLG": serialises ledger appends
MIGRATION_LOCK_KEY = 0x5354_4D47  # "STMG": one migrator at a time


def normalise_url(url: str) -> URL:
    """Accept the URLs users paste (postgres://, postgresql://, sqlite:///) and pick the
    async driver we ship."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(
        f"LEDGER_DATABASE_URL must be a sqlite:/// or postgresql:// URL, not {backend}://"
    )


def is_postgres(engine: AsyncEngine | AsyncConnection) -> bool:
    return engine.dialect.name == "postgresql"


def dialect_insert(conn: AsyncConnection, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT on this connection's engine."""
    return pg_insert(table) if is_postgres(conn) else sqlite_insert(table)


def create_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> AsyncEngine:
    """An engine for this event loop. Engines must not be shared across loops.

    `schema` (PostgreSQL) puts every table, the ledger's and Alembic's, in that schema.
    SQL parameters are hidden (hide_parameters): they hold payloads, names and emails, and
    would otherwise be in every SQL log line and every database error's message.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 60}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    connect_args.update(kwargs.pop("connect_args", {}))
    return create_async_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=10,
        connect_args=connect_args,
        hide_parameters=True,
        **kwargs,
    )


def _sqlite_engine(url: URL, **kwargs: Any) -> AsyncEngine:
    if url.database and url.database != ":memory:":
        # A folder that cannot be made is reported on connecting (503s, /readyz), not here.
        with contextlib.suppress(OSError):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to issue (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the writer; FULL sync so a commit we acknowledged
        # survives a power cut, not just a process crash.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: Any) -> None:
        # A file SQLite could only open read-only (immutable, or on a read-only mount)
        # stays read-only on that connection: drop the pool's connections, so that once
        # the file is writable again the next ones are opened read-write.
        if "readonly database" in str(context.original_exception):
            context.is_disconnect = True

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails at once with
        # SQLITE_BUSY when another writer committed in between; writers therefore
        # take the write lock up front (see write_transaction).
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write: commits on success, rolls back on error."""
    async with engine.connect() as conn:
        if not is_postgres(conn):
            await conn.execution_options(sqlite_begin="IMMEDIATE")
        async with conn.begin():
            yield conn


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database cannot be reached."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def engine_from_settings(settings: Settings) -> AsyncEngine:
    return create_engine(settings.database_url, schema=settings.ledger_database_schema)
