"""LEDGER_SECRET_KEY: weak keys refused, stored secrets that cannot be read reported in one
line while everything that needs no key keeps working, the key rotated without a gap, and
secrets given to `accounts add` in files or on standard input."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from cli.main import app
from ledger.engine import write_transaction
from ledger.schema import accounts
from ledger.secrets import SecretBox, new_secret_key
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.cli_runner import invoke
from tests.support.databases import TestDatabase
from tests.support.processes import environment, run, server_process
from tests.support.signing import OTHER_SECRET, SECRET, encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020

LIVE_KEY = "rk_live_" + "L1veKeyN0tF0rPr1nt1ng" + "4f2a"
TEST_KEY = "sk_test_" + "TestKeyN0tF0rPr1nt1ng" + "9x1z"
THIRD_SECRET = "whsec_third_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6"
TOKEN = "dash_" + "Q7w8E9r0T1y2U3i4O5p6"
DEFAULT, PROD = "/webhooks/stripe", "/webhooks/stripe/prod"


def key_of(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


async def add_prod(database: TestDatabase, key: str, name: str = "prod") -> None:
    code, _, err = await invoke(
        database,
        "accounts",
        "add",
        name,
        "--api-key",
        TEST_KEY,
        "--webhook-secret",
        OTHER_SECRET,
        extra_env={"LEDGER_SECRET_KEY": key},
    )
    assert code == 0, err


async def listed(database: TestDatabase, key: str) -> tuple[int, str, str]:
    env = {"LEDGER_SECRET_KEY": key, "STRIPE_WEBHOOK_SECRET": SECRET}
    return await invoke(database, "accounts", "list", extra_env=env)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


async def stored_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [
            tuple(row) for row in await conn.execute(select(accounts).order_by(accounts.c.name))
        ]


@pytest.mark.parametrize(
    "weak",
    [
        key_of(bytes(32)),  # the all-zero Fernet key
        key_of(b"\x41" * 32),
        key_of(bytes(range(32))),
        key_of(b"correct-horse-battery-staple-123"),
    ],
    ids=["all-zero", "one-byte-repeated", "counting", "passphrase"],
)
async def test_a_weak_secret_key_is_refused_in_one_line_and_nothing_stored(
    database: TestDatabase, engine: AsyncEngine, weak: str
) -> None:
    code, out, err = await invoke(
        database,
        "accounts",
        "add",
        "shop",
        "--mode",
        "test",
        "--webhook-secret",
        OTHER_SECRET,
        extra_env={"LEDGER_SECRET_KEY": weak},
    )
    assert code == 2
    assert "weak key" in one_line(err) and weak not in out + err
    assert await stored_rows(engine) == []


UNUSABLE = {
    "missing": "",
    "malformed": "not-a-fernet-key",
    "wrong": new_secret_key(),
    "weak": key_of(bytes(32)),
}


@pytest.mark.parametrize("problem", UNUSABLE)
async def test_accounts_list_shows_every_account_and_says_in_one_line_which_cannot_be_read(
    database: TestDatabase, engine: AsyncEngine, problem: str
) -> None:
    await add_prod(database, new_secret_key())
    code, out, err = await listed(database, UNUSABLE[problem])
    assert code == 1
    assert "default" in out and "prod" in out and "unreadable" in out
    assert "account 'prod' cannot be read" in one_line(err)


@pytest.mark.parametrize("problem", UNUSABLE)
async def test_metrics_need_no_key_and_work_with_unreadable_stored_secrets(
    database: TestDatabase, engine: AsyncEngine, problem: str
) -> None:
    await add_prod(database, new_secret_key())
    env = {"LEDGER_SECRET_KEY": UNUSABLE[problem]}
    for account in ("default", "prod"):
        code, _, err = await invoke(
            database, "metrics", "--period", "2025-01", "--account", account, extra_env=env
        )
        assert code == 0, err


async def test_replay_of_an_account_whose_key_cannot_be_read_is_refused_in_one_line(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    await add_prod(database, new_secret_key())
    code, _, err = await invoke(
        database,
        "replay",
        "--since",
        "2025-01-01",
        "--account",
        "prod",
        extra_env={"LEDGER_SECRET_KEY": new_secret_key()},
    )
    assert code == 2 and "account 'prod' cannot be read" in one_line(err)


def test_serve_starts_serves_the_environment_account_and_answers_503_for_unreadable_secrets(
    database: TestDatabase, engine: AsyncEngine, tmp_path: Path
) -> None:
    asyncio.run(add_prod(database, new_secret_key()))
    env = environment(database, LEDGER_SECRET_KEY=new_secret_key())
    answers = []
    with server_process(env, tmp_path) as server:
        for _ in range(2):  # across an accounts reload: the reason is still logged once
            for path, secret in [
                ("/webhooks/stripe", SECRET),
                ("/webhooks/stripe/prod", OTHER_SECRET),
            ]:
                body = encode(fresh_id(event_2020("invoice_paid")))
                answer = httpx.post(server.base + path, content=body, headers=signed(body, secret))
                answers.append((path, answer.status_code))
            time.sleep(2.5)
    log = server.log_path.read_text()
    assert answers == [(DEFAULT, 200), (PROD, 503)] * 2
    assert log.count('"account_unreadable"') == 1 and "Traceback" not in log


async def test_dashboard_pages_answer_with_an_unreadable_stored_account(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    await add_prod(database, new_secret_key())
    settings = make_settings(
        database, LEDGER_DASHBOARD_TOKEN=TOKEN, LEDGER_SECRET_KEY=new_secret_key()
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with app_client(settings) as client:
        pages = [
            await client.get("/?from=2025-01&to=2025-02", headers=auth),
            await client.get("/?account=prod&from=2025-01&to=2025-02", headers=auth),
            await client.get("/api/v1/metrics?period=2025-01&account=prod", headers=auth),
        ]
    assert [page.status_code for page in pages] == [200, 200, 200]
    assert "<option>prod</option>" in pages[0].text


async def post_prod(client: httpx.AsyncClient) -> int:
    body = encode(fresh_id(event_2020("invoice_paid")))
    answer = await client.post(
        "/webhooks/stripe/prod", content=body, headers=signed(body, OTHER_SECRET)
    )
    return answer.status_code


async def test_rotate_key_moves_every_stored_secret_to_the_new_key_without_a_gap(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    old, new = new_secret_key(), new_secret_key()
    await add_prod(database, old)
    await add_prod(database, old, name="staging")
    during = make_settings(database, LEDGER_SECRET_KEY=f"{new},{old}")
    async with app_client(during) as client:
        before = await post_prod(client)
        code, out, err = await invoke(
            database, "accounts", "rotate-key", extra_env={"LEDGER_SECRET_KEY": f"{new},{old}"}
        )
        after = await post_prod(client)
    assert (code, before, after) == (0, 200, 200), err
    assert "2 stored account(s)" in out
    assert (await invoke(database, "accounts", "list", extra_env={"LEDGER_SECRET_KEY": new}))[
        0
    ] == 0
    async with app_client(make_settings(database, LEDGER_SECRET_KEY=new)) as client:
        assert await post_prod(client) == 200
    assert (await invoke(database, "accounts", "list", extra_env={"LEDGER_SECRET_KEY": old}))[
        0
    ] == 1


async def test_a_rotation_that_cannot_read_a_secret_changes_nothing(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    first, second = new_secret_key(), new_secret_key()
    await add_prod(database, first)
    await add_prod(database, first, name="staging")
    async with write_transaction(engine) as conn:  # a row stored under another key
        await conn.execute(
            update(accounts)
            .where(accounts.c.name == "staging")
            .values(webhook_secrets_encrypted=SecretBox(second).encrypt(f'["{OTHER_SECRET}"]'))
        )
    rows = await stored_rows(engine)
    code, _, err = await invoke(
        database,
        "accounts",
        "rotate-key",
        extra_env={"LEDGER_SECRET_KEY": f"{new_secret_key()},{first}"},
    )
    assert code == 2 and "nothing re-encrypted: account 'staging'" in one_line(err)
    assert await stored_rows(engine) == rows


def add_with_input(
    database: TestDatabase, *args: str, stdin: str, key: str
) -> tuple[int, str, str]:
    env = database.environment() | {"LEDGER_SECRET_KEY": key, "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["accounts", "add", *args], env=env, input=stdin)
    return result.exit_code, result.stdout, result.stderr


async def test_accounts_add_reads_the_key_from_stdin_and_the_secrets_from_a_file(
    database: TestDatabase, engine: AsyncEngine, tmp_path: Path
) -> None:
    secrets = tmp_path / "whsec.txt"
    secrets.write_text(f"{OTHER_SECRET}\n\n{THIRD_SECRET}\n")
    key = new_secret_key()
    code, out, err = await asyncio.to_thread(
        add_with_input,
        database,
        "prod",
        "--api-key-file",
        "-",
        "--webhook-secret-file",
        str(secrets),
        stdin=LIVE_KEY + "\n",
        key=key,
    )
    assert code == 0, err
    assert "added prod (live), key rk_live_...4f2a, 2 signing secret(s)" in out
    assert LIVE_KEY not in out and OTHER_SECRET not in out
    async with app_client(make_settings(database, LEDGER_SECRET_KEY=key)) as client:
        body = encode(fresh_id(event_2020("invoice_paid")) | {"livemode": True})
        answer = await client.post(
            "/webhooks/stripe/prod", content=body, headers=signed(body, THIRD_SECRET)
        )
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--api-key-file", "-", "--webhook-secret-file", "-"], "can read standard input"),
        (["--mode", "test", "--webhook-secret-file", "/nonexistent/w"], "cannot read"),
        (["--api-key", LIVE_KEY, "--api-key-file", "-"], "not both"),
    ],
)
async def test_secrets_that_cannot_be_read_from_files_are_refused_in_one_line(
    database: TestDatabase, engine: AsyncEngine, args: list[str], reason: str
) -> None:
    code, _, err = await asyncio.to_thread(
        add_with_input, database, "prod", *args, stdin="", key=new_secret_key()
    )
    assert code == 2 and reason in one_line(err)
    assert await stored_rows(engine) == []


def test_the_secret_key_kept_in_dot_env_is_read_by_every_command(
    database: TestDatabase, engine: AsyncEngine, tmp_path: Path
) -> None:
    """docs/operations.md: keep LEDGER_SECRET_KEY in `.env` where the commands run."""
    (tmp_path / ".env").write_text(f"LEDGER_SECRET_KEY={new_secret_key()}\n")
    env = environment(database)
    added = run(
        ["accounts", "add", "prod", "--mode", "live", "--webhook-secret", OTHER_SECRET],
        env,
        tmp_path,
    )
    listed = run(["accounts", "list"], env, tmp_path)
    assert (added.returncode, listed.returncode) == (0, 0), added.stderr + listed.stderr


async def test_an_account_is_not_added_under_a_key_that_cannot_read_those_stored(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    await add_prod(database, new_secret_key())
    rows = await stored_rows(engine)
    code, _, err = await invoke(
        database,
        "accounts",
        "add",
        "staging",
        "--mode",
        "test",
        "--webhook-secret",
        OTHER_SECRET,
        extra_env={"LEDGER_SECRET_KEY": new_secret_key()},
    )
    assert code == 2 and "cannot read the secrets already stored" in one_line(err)
    assert await stored_rows(engine) == rows


async def test_secrets_stored_under_a_weak_key_can_be_moved_to_a_strong_one(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    """The all-zero key used to be accepted: as the old key of a rotation it still reads."""
    weak, new = key_of(bytes(32)), new_secret_key()
    await add_prod(database, new)
    async with write_transaction(engine) as conn:  # as stored before weak keys were refused
        await conn.execute(
            update(accounts).values(
                webhook_secrets_encrypted=Fernet(weak)
                .encrypt(f'["{OTHER_SECRET}"]'.encode())
                .decode(),
                api_key_encrypted=Fernet(weak).encrypt(TEST_KEY.encode()).decode(),
            )
        )
    assert (await listed(database, weak))[0] == 1  # refused as the key in use
    code, _, err = await invoke(
        database, "accounts", "rotate-key", extra_env={"LEDGER_SECRET_KEY": f"{new},{weak}"}
    )
    assert code == 0, err
    assert (await listed(database, new))[0] == 0
