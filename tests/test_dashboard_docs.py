"""Every command docs/dashboard.md shows, run as written in a shell against a served ledger
(its address the test's own), printing what the document says it prints."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.support.databases import TestDatabase
from tests.support.processes import COMMAND, environment, server_process

DOC = Path(__file__).parent.parent / "docs" / "dashboard.md"
DOCUMENTED_BASE = "http://127.0.0.1:8000"


def documented() -> list[tuple[str, list[str]]]:
    """Each `$ command` of the document's console blocks in order, with the lines shown
    after it (a command shown twice may print differently each time)."""
    found: list[tuple[str, list[str]]] = []
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    for block in blocks:
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line.removeprefix("$ "), []))
            elif found:
                found[-1][1].append(line)
    return found


def shell(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_every_documented_dashboard_command_prints_what_the_document_shows(
    database: TestDatabase, tmp_path: Path
) -> None:
    commands = documented()
    env = environment(database)
    env["PATH"] = f"{Path(COMMAND).parent}:{env['PATH']}"
    (export, _), serve, *served = commands

    assert export.startswith("export LEDGER_DASHBOARD_TOKEN=")
    made = shell(f'{export}; printf %s "$LEDGER_DASHBOARD_TOKEN"', env, tmp_path)
    token = made.stdout
    assert made.returncode == 0 and len(token) >= 16, made.stderr
    assert serve == ("stripe-ledger serve", [])

    [(short, reason)] = [c for c in served if c[0].startswith("LEDGER_DASHBOARD_TOKEN=too-")]
    refused = shell(short, env, tmp_path)
    assert (refused.returncode, refused.stderr.splitlines()) == (2, reason)
    served.remove((short, reason))

    env["LEDGER_DASHBOARD_TOKEN"] = token
    with server_process(env, tmp_path) as server:  # `stripe-ledger serve`, on a free port
        for command, shown in served:
            done = shell(command.replace(DOCUMENTED_BASE, server.base), env, tmp_path)
            assert done.returncode == 0, (command, done.stderr)
            printed = [line.rstrip() for line in done.stdout.splitlines()]
            if "/api/v1/metrics" in command:
                assert "mrr_end" in json.loads(done.stdout)
            elif " -D - " in command:  # response headers: the ones shown are among them
                assert set(shown) <= set(printed), printed
            else:
                assert printed == shown, command
