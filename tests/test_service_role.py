"""PostgreSQL: the service role made by `stripe-ledger db create-service-role` appends to
the ledger and keeps the read models, and cannot rewrite, alter, disable or drop anything;
`serve` warns when it connects with more power than that."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from cli.main import app
from ledger.engine import create_engine
from ledger.envelope import Source, parse_event
from ledger.event_log import EventLog, Outcome
from ledger.migrate import _config, upgrade
from ledger.roles import privilege_warning, privileges_of, scram_verifier
from ledger.schema import metadata
from projections.runner import ProjectionRunner
from tests.support.cli_runner import invoke
from tests.support.databases import TestDatabase, sqlite_database
from tests.support.deliveries import distinct_events
from tests.support.feeding import dump_read_models
from tests.support.processes import environment, server_process
from tests.support.signing import encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def as_role(database: TestDatabase, role: str) -> TestDatabase:
    url = make_url(database.url).set(username=role).render_as_string(hide_password=False)
    return TestDatabase(database.engine, url, database.schema)


async def _admin(database: TestDatabase, sql: str) -> None:
    url = make_url(database.url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _invoke_with_stdin(
    database: TestDatabase, stdin: str, *args: str
) -> tuple[int, str, str]:
    """`invoke`, with text for the command's standard input."""
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, app, list(args), input=stdin, env=database.environment()
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
async def role(postgres_engine: AsyncEngine, postgres_database: TestDatabase) -> AsyncIterator[str]:
    """A service role of this test's own, made by the documented command, dropped after."""
    name = f"svc_{uuid.uuid4().hex[:12]}"
    code, out, err = await invoke(postgres_database, "db", "create-service-role", name)
    assert code == 0, err or out
    try:
        yield name
    finally:
        await _admin(postgres_database, f"DROP OWNED BY {name}; DROP ROLE {name}")


@pytest.fixture
async def service_engine(postgres_database: TestDatabase, role: str) -> AsyncIterator[AsyncEngine]:
    database = as_role(postgres_database, role)
    engine = create_engine(database.url, schema=database.schema)
    yield engine
    await engine.dispose()


def _event(name: str = "invoice_paid") -> Any:
    return parse_event(encode(fresh_id(event_2020(name))), account="default", source=Source.WEBHOOK)


async def test_the_service_role_appends_to_the_ledger_and_reads_it(
    service_engine: AsyncEngine,
) -> None:
    log = EventLog(service_engine)
    event = _event()
    [stored] = await log.append([event])
    [again] = await log.append([event])
    assert (stored.outcome, again.outcome) == (Outcome.STORED, Outcome.DUPLICATE)
    assert [e.event_id for e in await log.read_after(0)] == [event.event_id]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_events SET type = 'rewritten'",
        "DELETE FROM ledger_events",
        "TRUNCATE ledger_events CASCADE",
        "UPDATE ledger_conflicts SET payload = '[]'",
        "DELETE FROM ledger_conflicts",
        "ALTER TABLE ledger_events ADD COLUMN note text",
        "ALTER TABLE ledger_events DISABLE TRIGGER ledger_events_refuse_change",
        "ALTER TABLE ledger_events DISABLE TRIGGER ALL",
        "DROP TRIGGER ledger_events_refuse_change ON ledger_events",
        "DROP FUNCTION ledger_refuse_change() CASCADE",
        "SET session_replication_role = replica",
        "DROP TABLE ledger_events CASCADE",
        "DROP TABLE customers",
        "ALTER TABLE ledger_events OWNER TO CURRENT_USER",
        "INSERT INTO ledger_events SELECT * FROM ledger_events "
        "ON CONFLICT (position) DO UPDATE SET payload = '[]'",
        "MERGE INTO ledger_events t USING ledger_events s ON t.position = s.position "
        "WHEN MATCHED THEN DELETE",
        "INSERT INTO service_roles VALUES ('someone_else', now())",
        "UPDATE alembic_version SET version_num = '0001'",
    ],
)
async def test_the_service_role_cannot_rewrite_alter_disable_or_drop(
    postgres_engine: AsyncEngine, service_engine: AsyncEngine, statement: str
) -> None:
    await EventLog(service_engine).append([_event()])
    before = await EventLog(postgres_engine).read_after(0)
    with pytest.raises(DBAPIError) as refused:
        async with service_engine.begin() as conn:
            await conn.execute(text(statement))
    # Refused by the privilege system (SQLSTATE 42501), before any trigger is consulted.
    assert "permission denied" in str(refused.value) or "must be owner" in str(refused.value)
    assert await EventLog(postgres_engine).read_after(0) == before


async def test_the_projection_runner_catches_up_and_rebuilds_as_the_service_role(
    postgres_engine: AsyncEngine, service_engine: AsyncEngine
) -> None:
    deliveries = distinct_events(60, customers=6, seed=15)
    await EventLog(service_engine).append(
        [parse_event(d.body, account="default", source=Source.WEBHOOK) for d in deliveries]
    )
    runner = ProjectionRunner(service_engine)
    assert await runner.catch_up("default") == len(deliveries)
    caught_up = await dump_read_models(postgres_engine)
    assert caught_up["customers"], "the runner derived no customer"
    assert await runner.rebuild("default") > 0
    assert await runner.position("default") == await EventLog(service_engine).last_position()
    assert await dump_read_models(postgres_engine) == caught_up


async def _privileges(engine: AsyncEngine, role: str) -> dict[str, set[str]]:
    async with engine.connect() as conn:
        tables = [*metadata.tables, "alembic_version", "service_roles"]
        return {
            table: {
                p
                for p in PRIVILEGES
                if await conn.scalar(
                    text("SELECT has_table_privilege(:role, CAST(:table AS regclass), :p)"),
                    {"role": role, "table": table, "p": p},
                )
            }
            for table in tables
        }


async def test_db_upgrade_grants_the_service_role_the_tables_later_revisions_add(
    postgres_database: TestDatabase,
) -> None:
    owner = create_engine(postgres_database.url, schema=postgres_database.schema)
    name = f"svc_{uuid.uuid4().hex[:12]}"
    try:
        async with owner.begin() as conn:  # the schema as of the revision that lists roles
            await conn.run_sync(lambda sync: command.upgrade(_config(sync), "0009"))
        code, out, err = await invoke(postgres_database, "db", "create-service-role", name)
        assert code == 0, err or out
        async with owner.begin() as conn:  # a grant lost meanwhile, too
            await conn.execute(text(f"REVOKE ALL ON customers FROM {name}"))
        code, out, err = await invoke(postgres_database, "db", "upgrade")
        assert code == 0, err or out
        granted = await _privileges(owner, name)
        assert granted == {table: set(privileges_of(table)) for table in granted}
    finally:
        await owner.dispose()
        await _admin(postgres_database, f"DROP OWNED BY {name}; DROP ROLE {name}")


async def test_making_the_service_role_again_changes_nothing(
    postgres_engine: AsyncEngine, postgres_database: TestDatabase, role: str
) -> None:
    before = await _privileges(postgres_engine, role)
    code, out, err = await invoke(postgres_database, "db", "create-service-role", role)
    assert code == 0, err or out
    assert await _privileges(postgres_engine, role) == before


async def test_a_superuser_is_refused_as_the_service_role(
    postgres_engine: AsyncEngine, postgres_database: TestDatabase
) -> None:
    code, _, err = await invoke(postgres_database, "db", "create-service-role", "postgres")
    assert code == 2
    assert "superuser" in err and len(err.strip().splitlines()) == 1


async def test_the_password_from_stdin_is_stored_as_postgresql_would_store_it(
    postgres_engine: AsyncEngine, postgres_database: TestDatabase
) -> None:
    name = f"svc_{uuid.uuid4().hex[:12]}"
    password = "correct horse battery staple"
    try:
        code, out, err = await _invoke_with_stdin(
            postgres_database,
            f"{password}\n",
            "db",
            "create-service-role",
            name,
            "--password-stdin",
        )
        assert code == 0, err or out
        assert password not in out + err
        async with postgres_engine.connect() as conn:
            stored = await conn.scalar(
                text("SELECT rolpassword FROM pg_authid WHERE rolname = :n"), {"n": name}
            )
        # PostgreSQL's own verifier of the same password and salt is the same string.
        salt = base64.b64decode(stored.split(":")[1].split("$")[0])
        assert stored == scram_verifier(password, salt)
        await _admin(postgres_database, f"ALTER ROLE {name} PASSWORD '{password}'")
        async with postgres_engine.connect() as conn:
            theirs = await conn.scalar(
                text("SELECT rolpassword FROM pg_authid WHERE rolname = :n"), {"n": name}
            )
        their_salt = base64.b64decode(theirs.split(":")[1].split("$")[0])
        assert theirs == scram_verifier(password, their_salt)
    finally:
        await _admin(postgres_database, f"DROP OWNED BY {name}; DROP ROLE {name}")


def test_serve_warns_when_it_connects_as_a_superuser(
    postgres_engine: AsyncEngine, postgres_database: TestDatabase, tmp_path: Path
) -> None:
    with server_process(environment(postgres_database), tmp_path) as server:
        pass
    warnings = [
        line
        for line in server.log_path.read_text().splitlines()
        if "can_rewrite_the_ledger" in line
    ]
    assert len(warnings) == 1 and "a superuser" in warnings[0]


def test_serve_as_the_service_role_is_ready_and_takes_webhooks_without_a_warning(
    postgres_database: TestDatabase, role: str, tmp_path: Path
) -> None:
    env = environment(as_role(postgres_database, role))
    body = encode(fresh_id(event_2020("invoice_paid")))
    with server_process(env, tmp_path) as server:
        ready = httpx.get(f"{server.base}/readyz")
        response = httpx.post(f"{server.base}/webhooks/stripe", content=body, headers=signed(body))
    assert ready.status_code == 200, ready.text
    assert response.status_code == 200, response.text
    assert "can_rewrite_the_ledger" not in server.log_path.read_text()


async def test_serve_warns_when_it_connects_as_the_tables_owner(
    postgres_engine: AsyncEngine, postgres_database: TestDatabase
) -> None:
    name = f"own_{uuid.uuid4().hex[:12]}"
    schema = postgres_database.schema
    await _admin(
        postgres_database,
        f"CREATE ROLE {name} LOGIN; GRANT USAGE ON SCHEMA {schema} TO {name}; "
        f"ALTER TABLE {schema}.ledger_events OWNER TO {name}",
    )
    database = as_role(postgres_database, name)
    engine = create_engine(database.url, schema=database.schema)
    try:
        async with engine.connect() as conn:
            assert await privilege_warning(conn) == (
                f"connected to PostgreSQL as {name}, the owner of ledger_events"
            )
    finally:
        await engine.dispose()
        await _admin(
            postgres_database,
            f"REASSIGN OWNED BY {name} TO postgres; DROP OWNED BY {name}; DROP ROLE {name}",
        )


async def test_making_a_service_role_on_sqlite_is_a_one_line_refusal(tmp_path: Path) -> None:
    database = sqlite_database(tmp_path)
    engine = create_engine(database.url)
    await upgrade(engine)
    await engine.dispose()
    code, _, err = await invoke(database, "db", "create-service-role", "svc")
    assert code == 2 and "PostgreSQL" in err and len(err.strip().splitlines()) == 1


async def test_the_service_role_finding_migrations_pending_says_to_run_them_as_the_owner(
    postgres_database: TestDatabase,
) -> None:
    owner = create_engine(postgres_database.url, schema=postgres_database.schema)
    name = f"svc_{uuid.uuid4().hex[:12]}"
    try:
        async with owner.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_config(sync), "0009"))
        code, out, err = await invoke(postgres_database, "db", "create-service-role", name)
        assert code == 0, err or out
        code, _, err = await invoke(as_role(postgres_database, name), "db", "upgrade")
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "run `stripe-ledger db upgrade` as the owner" in err
    finally:
        await owner.dispose()
        await _admin(postgres_database, f"DROP OWNED BY {name}; DROP ROLE {name}")
