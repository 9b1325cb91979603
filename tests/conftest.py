"""Fixtures shared by the whole suite: every database-backed test runs on each engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import create_engine
from ledger.event_log import EventLog
from ledger.migrate import upgrade
from ledger.settings import Settings
from tests.support.databases import ENGINES, PostgresRun, TestDatabase, sqlite_database
from tests.support.signing import SECRET


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A combination of parameters that cannot exist is not collected, rather than skipped:
    a skip in this suite must mean something was left out (the append path UNNEST is
    PostgreSQL's alone)."""
    items[:] = [item for item in items if not _impossible(item)]


def _impossible(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("database") == "sqlite" and params.get("event_log") == "unnest"


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Commands run in-process configure logging; no test inherits another's setup."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def postgres_run() -> Iterator[PostgresRun | None]:
    if "postgresql" not in ENGINES:
        yield None
        return
    run = PostgresRun()
    run.create()
    yield run
    run.drop()


@pytest.fixture(params=ENGINES)
async def database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_run: PostgresRun | None
) -> TestDatabase:
    if request.param == "sqlite":
        return sqlite_database(tmp_path)
    assert postgres_run is not None
    return await postgres_run.new_schema()


@pytest.fixture
async def engine(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    async for engine in _migrated(database):
        yield engine


@pytest.fixture
async def postgres_database(postgres_run: PostgresRun | None) -> TestDatabase:
    """A fresh schema on PostgreSQL alone, for claims about the production engine
    (processes killed or cut off, several processes on one database)."""
    if postgres_run is None:
        pytest.skip("LEDGER_TEST_ENGINES leaves PostgreSQL out")
    return await postgres_run.new_schema()


@pytest.fixture
async def postgres_engine(postgres_database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    async for engine in _migrated(postgres_database):
        yield engine


async def _migrated(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database.url, schema=database.schema)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def event_log(engine: AsyncEngine) -> EventLog:
    return EventLog(engine)


def make_settings(database: TestDatabase, **overrides: Any) -> Settings:
    """Settings for a test, ignoring the developer's environment and .env file."""
    values: dict[str, Any] = {
        "LEDGER_DATABASE_URL": database.url,
        "LEDGER_DATABASE_SCHEMA": database.schema,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_KEY": "",
        "STRIPE_MODE": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
