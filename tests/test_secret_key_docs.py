"""The commands docs/operations.md shows for the secret key and for accounts, run as
written in a shell, each answering what the document says it answers."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.databases import TestDatabase
from tests.support.processes import COMMAND, environment
from tests.support.signing import OTHER_SECRET

OPERATIONS = Path(__file__).parent.parent / "docs" / "operations.md"
STAGING_KEY = "sk_test_" + "DocsStagingKey0000" + "a1b2"


def documented(command: str) -> list[str]:
    """The output lines docs/operations.md shows after `$ command`."""
    lines = [line.strip() for line in OPERATIONS.read_text().splitlines()]
    start = lines.index(f"$ {command}") + 1
    shown = []
    for line in lines[start:]:
        if not line or line.startswith(("$ ", "```")):
            break
        shown.append(line)
    return shown


def shell(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_documented_secret_key_and_account_commands_answer_as_documented(
    database: TestDatabase, engine: AsyncEngine, tmp_path: Path
) -> None:
    env = environment(database, COLUMNS="200")
    env["PATH"] = f"{Path(COMMAND).parent}:{env['PATH']}"
    (tmp_path / "whsec.txt").write_text(OTHER_SECRET + "\n")
    (tmp_path / "key.txt").write_text(STAGING_KEY + "\n")

    keep = 'echo "LEDGER_SECRET_KEY=$(stripe-ledger accounts new-secret-key)" >> .env'
    assert f"$ {keep}" in OPERATIONS.read_text()
    assert shell(keep, env, tmp_path).returncode == 0
    old = (tmp_path / ".env").read_text().strip().removeprefix("LEDGER_SECRET_KEY=")

    weak = (
        "LEDGER_SECRET_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= stripe-ledger accounts "
        "add shop --mode test --webhook-secret-file whsec.txt"
    )
    refused = shell(weak, env, tmp_path)
    assert (refused.returncode, refused.stderr.splitlines()) == (2, documented(weak))

    add = (
        "stripe-ledger accounts add staging --api-key-file - --webhook-secret-file whsec.txt"
        " < key.txt"
    )
    added = shell(add, env, tmp_path)
    assert (added.returncode, added.stdout.splitlines()) == (0, documented(add)), added.stderr
    disable = "stripe-ledger accounts disable staging"
    disabled = shell(disable, env, tmp_path)
    assert disabled.stdout.splitlines() == documented(disable)

    extra = "stripe-ledger accounts add second --mode live --webhook-secret-file whsec.txt"
    assert shell(extra, env, tmp_path).returncode == 0
    new = shell("stripe-ledger accounts new-secret-key", env, tmp_path).stdout.strip()
    (tmp_path / ".env").write_text(f"LEDGER_SECRET_KEY={new},{old}\n")
    rotate = "stripe-ledger accounts rotate-key"
    rotated = shell(rotate, env, tmp_path)
    assert (rotated.returncode, rotated.stdout.splitlines()) == (0, documented(rotate))

    (tmp_path / ".env").write_text(f"LEDGER_SECRET_KEY={old}\n")  # the old key alone
    listed = shell("stripe-ledger accounts list", env, tmp_path)
    assert listed.returncode == 1
    staging = [line for line in listed.stderr.splitlines() if "'staging'" in line]
    assert staging == [documented("stripe-ledger accounts list")[-1]]
    (tmp_path / ".env").write_text(f"LEDGER_SECRET_KEY={new}\n")
    assert shell("stripe-ledger accounts list", env, tmp_path).returncode == 0
