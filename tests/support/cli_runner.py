"""Invoking the real `stripe-ledger` command in-process (faster than a subprocess), in a
worker thread, because each command runs its own event loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner

from cli.main import app
from tests.support.databases import TestDatabase


async def invoke(
    database: TestDatabase, *args: str, extra_env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    runner = CliRunner()
    env = database.environment() | {"LEDGER_REPORTING_CURRENCY": "usd", "COLUMNS": "200"}
    env |= extra_env or {}
    result = await asyncio.to_thread(runner.invoke, app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


async def invoke_json(database: TestDatabase, *args: str) -> Any:
    code, out, err = await invoke(database, *args, "--json")
    assert code == 0, err or out
    return json.loads(out)
