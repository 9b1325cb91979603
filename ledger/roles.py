"""PostgreSQL roles: a service role that may append to the ledger and write the read models
but never rewrite, alter, disable or drop anything, and a check that tells when a
connection holds more power than that (the tables' owner, or a superuser).

Migrations run as the owner; the service runs as a role made here. The roles made are
listed in `service_roles`, so that each `db upgrade` grants them the tables it adds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from sqlalchemy import Column, MetaData, String, Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine import dialect_insert, is_postgres
from ledger.schema import UTCDateTime, metadata

# Appended to, never changed: the database's triggers refuse the rest, and the service
# role is not even granted it.
IMMUTABLE = ("ledger_events", "ledger_conflicts")
# The schema's bookkeeping: the service reads it; a service role listing another role
# here would have the next upgrade grant that role the read models.
READ_ONLY = ("alembic_version", "service_roles")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)

service_roles = Table(
    "service_roles",
    MetaData(),
    Column("name", String(63), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)


class RoleError(Exception):
    """A one-line reason the service role cannot be made as asked."""


def privileges_of(table: str) -> tuple[str, ...]:
    if table in IMMUTABLE:
        return ("SELECT", "INSERT")
    if table in READ_ONLY:
        return ("SELECT",)
    return ("SELECT", "INSERT", "UPDATE", "DELETE")


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677), computed here
    so the password itself never travels in a statement (or a server log of one)."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode()

    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


async def create_service_role(conn: AsyncConnection, name: str, password: str | None) -> str:
    """Make (or bring up to date) the service role `name`; returns the ledger's schema.
    Idempotent: run again, it re-applies exactly the privileges below."""
    if not is_postgres(conn):
        raise RoleError("database roles are a PostgreSQL feature; SQLite has none to make")
    if not _NAME.fullmatch(name):
        raise RoleError(
            f"a role name is 1-63 of a-z, 0-9 and _, not starting with a digit: {name!r}"
        )
    schema = await _ledger_schema(conn)
    if not await can_grant(conn):
        raise RoleError("connect as the owner of the ledger's tables to make the service role")
    existing = (
        await conn.execute(
            text(
                "SELECT r.rolsuper, pg_has_role(r.oid, c.relowner, 'MEMBER') AS owner "
                "FROM pg_roles r, pg_class c "
                "WHERE r.rolname = :name AND c.oid = to_regclass('ledger_events')"
            ),
            {"name": name},
        )
    ).first()
    role = _quote(conn, name)
    if existing is None:
        await conn.execute(
            text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION")
        )
    elif existing.rolsuper or existing.owner:
        raise RoleError(f"role {name} is a superuser or owns the ledger: it cannot serve")
    if password is not None:
        # The verifier's colons are not bind parameters: sent as it is.
        await conn.exec_driver_sql(f"ALTER ROLE {role} PASSWORD '{scram_verifier(password)}'")
    insert = dialect_insert(conn, service_roles).on_conflict_do_nothing()
    await conn.execute(insert.values(name=name, created_at=text("now()")))
    await grant(conn, name, schema)
    return schema


async def grant(conn: AsyncConnection, name: str, schema: str) -> None:
    """Exactly the service's privileges on every table of the ledger's schema: revoked,
    then granted, in the caller's transaction, so no statement sees a half state."""
    role, quoted_schema = _quote(conn, name), _quote(conn, schema)
    await conn.execute(text(f"GRANT USAGE ON SCHEMA {quoted_schema} TO {role}"))
    tables = [t for t in (*metadata.tables, *READ_ONLY) if await _exists(conn, schema, t)]
    for table in tables:
        qualified = f"{quoted_schema}.{_quote(conn, table)}"
        await conn.execute(text(f"REVOKE ALL ON {qualified} FROM {role}"))
        await conn.execute(
            text(f"GRANT {', '.join(privileges_of(table))} ON {qualified} TO {role}")
        )
    # The sequences behind the tables' ids: an INSERT takes its next value.
    sequences = await conn.scalars(
        text(
            "SELECT DISTINCT s.oid::regclass::text FROM pg_class s "
            "JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid "
            "JOIN pg_class t ON t.oid = d.refobjid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE s.relkind = 'S' AND n.nspname = :schema AND t.relname = ANY(:tables)"
        ),
        {"schema": schema, "tables": tables},
    )
    for sequence in sequences:
        await conn.execute(text(f"GRANT USAGE, SELECT ON SEQUENCE {sequence} TO {role}"))


async def regrant_service_roles(conn: AsyncConnection) -> None:
    """After migrations: every listed service role gets the tables they added. Skipped when
    this connection could not grant (the service itself starting)."""
    if not is_postgres(conn) or not await conn.scalar(
        text("SELECT to_regclass('service_roles') IS NOT NULL")
    ):
        return
    if not await can_grant(conn):
        return
    schema = await _ledger_schema(conn)
    names = await conn.scalars(
        text("SELECT s.name FROM service_roles s JOIN pg_roles r ON r.rolname = s.name")
    )
    for name in list(names):
        await grant(conn, name, schema)


async def privilege_warning(conn: AsyncConnection) -> str | None:
    """Why this connection could rewrite the ledger despite its triggers (a superuser, or
    the owner of ledger_events, who may disable or drop them); None if it could not."""
    powers = await _powers(conn)
    if powers is None:
        return None
    name, superuser, owner = powers
    if superuser:
        return f"connected to PostgreSQL as {name}, a superuser"
    if owner:
        return f"connected to PostgreSQL as {name}, the owner of ledger_events"
    return None


async def can_grant(conn: AsyncConnection) -> bool:
    """Whether this connection may grant on the ledger's tables (their owner, a superuser)."""
    powers = await _powers(conn)
    return powers is not None and (powers[1] or powers[2])


async def is_service_role(conn: AsyncConnection) -> bool:
    """Whether the ledger exists and this connection is neither its owner nor a superuser:
    such a role may not migrate it."""
    powers = await _powers(conn)
    return powers is not None and not (powers[1] or powers[2])


async def _powers(conn: AsyncConnection) -> tuple[str, bool, bool] | None:
    """(role, is superuser, is or acts as the owner of ledger_events), on PostgreSQL once
    the ledger exists."""
    if not is_postgres(conn):
        return None
    row = (
        await conn.execute(
            text(
                "SELECT current_user AS name, r.rolsuper, "
                "pg_has_role(current_user, c.relowner, 'MEMBER') AS owner "
                "FROM pg_roles r, pg_class c "
                "WHERE r.rolname = current_user AND c.oid = to_regclass('ledger_events')"
            )
        )
    ).first()
    return None if row is None else (str(row.name), bool(row.rolsuper), bool(row.owner))


async def _ledger_schema(conn: AsyncConnection) -> str:
    schema = await conn.scalar(
        text(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass('ledger_events')"
        )
    )
    if schema is None:
        raise RoleError("the ledger's tables are not there: run `stripe-ledger db upgrade` first")
    return str(schema)


async def _exists(conn: AsyncConnection, schema: str, table: str) -> bool:
    qualified = f"{_quote(conn, schema)}.{_quote(conn, table)}"
    return await conn.scalar(text("SELECT to_regclass(:name)"), {"name": qualified}) is not None


def _quote(conn: AsyncConnection, identifier: str) -> str:
    quoted: str = conn.dialect.identifier_preparer.quote_identifier(identifier)
    return quoted
