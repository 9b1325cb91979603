"""`stripe-ledger serve` starts when the database cannot be used yet: PostgreSQL
unreachable, a data folder it cannot write, an immutable SQLite file. It answers /healthz,
answers 503 to deliveries and to /readyz with a one-line reason, never prints a traceback,
and once the database can be used it applies pending migrations and serves normally,
without a restart. /readyz is ready only when an append could commit."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import create_engine, write_transaction
from ledger.migrate import current_revision, head_revision, upgrade
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.databases import TestDatabase, sqlite_database
from tests.support.processes import environment, run, server_process
from tests.support.signing import encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020
from tests.support.tcp_proxy import TcpProxy


def delivery() -> bytes:
    return encode(fresh_id(event_2020("invoice_paid")))


def post(base: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{base}/webhooks/stripe", content=body, headers=signed(body), timeout=30)


def ready_within(base: str, seconds: float) -> httpx.Response:
    """/readyz, polled until it answers 200 or `seconds` have passed (a bounded wait)."""
    deadline = time.monotonic() + seconds
    while (ready := httpx.get(f"{base}/readyz", timeout=30)).status_code != 200:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return ready


def assert_one_line_reason(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 503
    reason = response.json()["reason"]
    assert "\n" not in reason and len(reason) < 300, reason
    assert all(word in reason for word in words), reason


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """chattr +i: refused even to root (permission bits are not, and tests run as root)."""
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def migrated_sqlite(tmp_path: Path) -> tuple[TestDatabase, Path]:
    folder = tmp_path / "data"
    database = sqlite_database(folder)
    upgraded = run(["db", "upgrade"], environment(database), tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    return database, folder / "ledger.sqlite3"


def outage_at_start(
    proxy: TcpProxy, database: TestDatabase, tmp_path: Path, workers: int
) -> tuple[httpx.Response, httpx.Response, httpx.Response, httpx.Response, str]:
    """Serve through `proxy`, cut from the start, then restored: /readyz and a delivery
    before, /readyz (once ready) and the same delivery after, and the server's log."""
    proxy.cut()  # refused from the start: the schema is not even migrated yet
    url = make_url(database.url).set(host="127.0.0.1", port=proxy.port)
    env = environment(replace(database, url=url.render_as_string(hide_password=False)))
    with server_process(env, tmp_path, "--workers", str(workers)) as server:
        not_ready = httpx.get(f"{server.base}/readyz")
        body = delivery()
        refused = post(server.base, body)
        proxy.restore()
        ready = ready_within(server.base, 30)
        # With two workers the other may open its ledger a retry later: Stripe redelivers.
        accepted = post(server.base, body)
        deadline = time.monotonic() + 10
        while accepted.status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
            accepted = post(server.base, body)
    return not_ready, refused, ready, accepted, server.log_path.read_text()


@pytest.mark.parametrize("workers", [1, 2])
async def test_serve_started_while_postgresql_is_unreachable_answers_503_then_migrates_and_serves(
    postgres_database: TestDatabase, tmp_path: Path, workers: int
) -> None:
    target = make_url(postgres_database.url)
    with TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        not_ready, refused, ready, accepted, log = await asyncio.to_thread(
            outage_at_start, proxy, postgres_database, tmp_path, workers
        )
    engine = create_engine(postgres_database.url, schema=postgres_database.schema)
    try:
        revision = await current_revision(engine)
    finally:
        await engine.dispose()

    assert_one_line_reason(not_ready, "database unreachable")
    assert refused.status_code == 503
    assert ready.status_code == 200, ready.text
    assert accepted.status_code == 200 and accepted.json()["outcome"] == "stored"
    assert revision == head_revision()
    assert "Traceback" not in log
    if workers == 1:  # with two, lines a worker logs as it stops may not be flushed yet
        assert '"ledger_not_open"' in log and '"ledger_open"' in log


def test_serve_starts_on_a_data_folder_it_cannot_write_and_serves_once_it_can(
    tmp_path: Path,
) -> None:
    database, file = migrated_sqlite(tmp_path)
    env = environment(database)
    with immutable(file.parent, file), server_process(env, tmp_path) as server:
        not_ready = httpx.get(f"{server.base}/readyz")
        refused = post(server.base, delivery())
        subprocess.run(["chattr", "-i", str(file.parent), str(file)], check=True)
        ready = ready_within(server.base, 30)
        accepted = post(server.base, delivery())

    assert_one_line_reason(not_ready, "database")
    assert refused.status_code == 503
    assert ready.status_code == 200, ready.text
    assert accepted.status_code == 200
    output = server.log_path.read_text()
    assert "Traceback" not in output
    assert "serving without the database for now" in output


def test_readyz_is_503_while_the_sqlite_file_is_immutable_and_every_append_fails(
    tmp_path: Path,
) -> None:
    database, file = migrated_sqlite(tmp_path)
    env = environment(database)
    # SQLite opens an immutable file read-only: every read works, every write fails.
    with immutable(file), server_process(env, tmp_path) as server:
        not_ready = httpx.get(f"{server.base}/readyz")
        refused = post(server.base, delivery())
        subprocess.run(["chattr", "-i", str(file)], check=True)
        ready = ready_within(server.base, 30)
        accepted = post(server.base, delivery())

    assert_one_line_reason(not_ready, "read-only")
    assert refused.status_code == 503
    assert ready.status_code == 200, ready.text
    assert accepted.status_code == 200
    assert "Traceback" not in server.log_path.read_text()


@contextlib.asynccontextmanager
async def role_on(
    engine: AsyncEngine, database: TestDatabase, *grants: str
) -> AsyncIterator[TestDatabase]:
    """`database` as seen by a new role that may read the schema, with these extra
    statements run for it (`{role}`: its name); dropped on the way out."""
    role = f"h_{uuid.uuid4().hex[:12]}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        await conn.execute(text(f"GRANT USAGE ON SCHEMA {database.schema} TO {role}"))
        await conn.execute(
            text(f"GRANT SELECT ON ALL TABLES IN SCHEMA {database.schema} TO {role}")
        )
        for grant in grants:
            await conn.execute(text(grant.format(role=role)))
    url = make_url(database.url).set(username=role).render_as_string(hide_password=False)
    try:
        yield replace(database, url=url)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP OWNED BY {role}"))
            await conn.execute(text(f"DROP ROLE {role}"))


async def test_readyz_is_503_on_a_read_only_postgresql_session(
    postgres_database: TestDatabase, postgres_engine: AsyncEngine
) -> None:
    read_only = "ALTER ROLE {role} SET default_transaction_read_only = on"
    grant = f"GRANT INSERT ON ALL TABLES IN SCHEMA {postgres_database.schema} TO {{role}}"
    async with (
        role_on(postgres_engine, postgres_database, grant, read_only) as database,
        app_client(make_settings(database)) as client,
    ):
        ready = await client.get("/readyz")
    assert_one_line_reason(ready, "read-only")


async def test_readyz_is_503_for_a_postgresql_role_that_may_not_insert_into_the_ledger(
    postgres_database: TestDatabase, postgres_engine: AsyncEngine
) -> None:
    async with (
        role_on(postgres_engine, postgres_database) as database,
        app_client(make_settings(database)) as client,
    ):
        ready = await client.get("/readyz")
    assert_one_line_reason(ready, "may not insert")


async def test_readyz_is_200_while_another_writer_holds_sqlites_write_lock(
    tmp_path: Path,
) -> None:
    database = sqlite_database(tmp_path)
    engine = create_engine(database.url)
    try:
        await upgrade(engine)
        async with app_client(make_settings(database)) as client, write_transaction(engine):
            ready = await client.get("/readyz")  # the runner or a swap, at work meanwhile
    finally:
        await engine.dispose()
    assert ready.status_code == 200, ready.text


def test_serve_refuses_a_database_url_it_cannot_use_in_one_line(tmp_path: Path) -> None:
    database = TestDatabase("mysql", "mysql://ledger:s3cret-pw@127.0.0.1/ledger", None)
    refused = run(["serve", "--port", "1"], environment(database), tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "LEDGER_DATABASE_URL" in refused.stderr and "s3cret-pw" not in refused.stderr
