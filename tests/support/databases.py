"""Fresh databases for tests: a SQLite file per test; on PostgreSQL, a database per test
run and a schema per test inside it. PostgreSQL being unreachable is an error, never a
skip: the contract must hold on both engines.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

ADMIN_URL = os.environ.get("LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ENGINES = tuple(os.environ.get("LEDGER_TEST_ENGINES", "sqlite,postgresql").split(","))


@dataclass(frozen=True)
class TestDatabase:
    __test__ = False  # not a test class, despite the name

    engine: str
    url: str
    schema: str | None

    def environment(self) -> dict[str, str]:
        env = {"LEDGER_DATABASE_URL": self.url}
        if self.schema:
            env["LEDGER_DATABASE_SCHEMA"] = self.schema
        return env


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _admin(sql: str) -> None:
    try:
        conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is unreachable at {ADMIN_URL} ({type(exc).__name__}: {exc}); the "
            "suite runs on both engines, so start it (see .ci/run) instead of skipping"
        ) from exc
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class PostgresRun:
    """One database for the whole test run, dropped at the end."""

    def __init__(self) -> None:
        self.name = f"stripe_ledger_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.url = _with_database(ADMIN_URL, self.name)

    def create(self) -> None:
        asyncio.run(_admin(f'CREATE DATABASE "{self.name}"'))

    def drop(self) -> None:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))

    async def new_schema(self) -> TestDatabase:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.url, timeout=5)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
        finally:
            await conn.close()
        return TestDatabase("postgresql", self.url, schema)


def sqlite_database(folder: Path) -> TestDatabase:
    return TestDatabase("sqlite", f"sqlite+aiosqlite:///{folder / 'ledger.sqlite3'}", None)
