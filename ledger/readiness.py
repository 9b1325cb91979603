"""Whether the ledger could take an append right now, and if not, why, in one line.

Reading is not enough: an immutable or read-only SQLite file, a read-only PostgreSQL
session (a standby, default_transaction_read_only) or a role without INSERT all answer
SELECT 1 while every append fails. The probe writes nothing and appends no event.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import is_postgres
from ledger.migrate import head_revision, revision_of
from ledger.settings import ConfigError

MIGRATIONS_PENDING = "migrations pending: run stripe-ledger db upgrade"
# How long the SQLite probe waits for another writer's lock (then takes it as a yes).
_PROBE_BUSY_MS = 200


async def unready_reason(engine: AsyncEngine) -> str | None:
    """None when an append could commit now; else the reason it could not."""
    try:
        async with engine.connect() as conn:
            current = await revision_of(conn)
            await conn.rollback()  # the probe below must begin a transaction of its own
            if current != head_revision():
                return MIGRATIONS_PENDING
            if is_postgres(conn):
                return await _postgres_refuses(conn)
            return await _sqlite_refuses(conn)
    except Exception as exc:  # whatever stops us reaching the database makes it unready
        return describe(exc)


def describe(exc: BaseException) -> str:
    """A database failure in one line, without secrets: the driver's own first line for a
    database or OS error (they name a host, a port, a path or a table, never a password),
    only the type's name for anything else but our own ConfigError."""
    if isinstance(exc, ConfigError):  # our own one-line reason (a service role, say)
        return str(exc)
    cause: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
    kind = type(cause).__name__
    lines = str(cause).strip().splitlines()
    known = isinstance(exc, (DBAPIError, OSError))
    detail = lines[0][:200] if known and lines else ""
    if "readonly" in detail or "read-only" in detail:
        return f"database is read-only: appends cannot commit ({detail})"
    state = (
        "unreachable" if isinstance(cause, OSError) or "unable to open" in detail else "unavailable"
    )
    return f"database {state}: {kind}: {detail}" if detail else f"database {state}: {kind}"


async def _sqlite_refuses(conn: AsyncConnection) -> str | None:
    # A statement that needs the write lock and changes nothing: on a read-only or
    # immutable file it fails as an append would. Rolled back at once.
    previous = int(await conn.scalar(text("PRAGMA busy_timeout")) or 0)
    await conn.exec_driver_sql(f"PRAGMA busy_timeout={_PROBE_BUSY_MS}")
    try:
        await conn.exec_driver_sql("DELETE FROM projection_positions WHERE 0")
    except DBAPIError as exc:
        # Another writer holds the lock (the runner, a swap): the database takes writes,
        # and an append would wait its turn (LEDGER_COMMIT_TIMEOUT_SECONDS) like that one.
        if "locked" not in str(exc.orig) and "busy" not in str(exc.orig):
            raise
    finally:
        await conn.rollback()
        await conn.exec_driver_sql(f"PRAGMA busy_timeout={previous}")
        await conn.commit()
    return None


async def _postgres_refuses(conn: AsyncConnection) -> str | None:
    row = (
        await conn.execute(
            text(
                "SELECT current_setting('transaction_read_only') = 'on' AS read_only, "
                "has_table_privilege('ledger_events', 'INSERT') AS may_insert, "
                "coalesce(has_sequence_privilege("
                "pg_get_serial_sequence('ledger_events', 'position'), 'USAGE'), true) AS may_number"
            )
        )
    ).one()
    await conn.rollback()
    if row.read_only:
        return "database is read-only: appends cannot commit (transaction_read_only is on)"
    if not (row.may_insert and row.may_number):
        return "database refuses appends: this role may not insert into ledger_events"
    return None
