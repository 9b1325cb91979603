"""Several accounts side by side: keys, modes, encrypted secrets, enable/disable, `check`,
scheduled reconciliation, and no secret ever in an output or a log."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.reconcile import reconciler
from ledger.event_log import EventLog
from ledger.schema import accounts, ledger_events
from ledger.secrets import new_secret_key
from simulator.life import end_of, simulated_account
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.cli_runner import invoke
from tests.support.databases import TestDatabase
from tests.support.fake_stripe import Dataset, FakeStripe, serve_fake_stripe
from tests.support.processes import environment, run, serving
from tests.support.signing import OTHER_SECRET, encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020

SECRET_KEY = new_secret_key()
LIVE_KEY = "rk_live_" + "L1veKeyN0tF0rPr1nt1ng" + "4f2a"
TEST_KEY = "sk_test_" + "TestKeyN0tF0rPr1nt1ng" + "9x1z"


async def cli(database: TestDatabase, *args: str, **env: str) -> tuple[int, str, str]:
    return await invoke(database, *args, extra_env={"LEDGER_SECRET_KEY": SECRET_KEY, **env})


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("sk_test_abc123", "TEST MODE"),
        ("rk_test_abc123", "TEST MODE"),
        ("sk_live_abc123", "live"),
        ("rk_live_abc123", "live"),
    ],
)
async def test_the_mode_of_an_account_comes_from_its_key(
    database: TestDatabase, engine: AsyncEngine, key: str, label: str
) -> None:
    code, out, err = await cli(
        database, "accounts", "add", "shop", "--api-key", key, "--webhook-secret", OTHER_SECRET
    )
    assert code == 0, err
    assert label in out and key not in out


@pytest.mark.parametrize("key", ["pk_live_abc123", "pk_test_abc123", "whsec_abc123", "nonsense"])
async def test_a_key_that_cannot_read_billing_data_is_refused_and_nothing_stored(
    database: TestDatabase, engine: AsyncEngine, key: str
) -> None:
    code, out, err = await cli(
        database, "accounts", "add", "shop", "--api-key", key, "--webhook-secret", OTHER_SECRET
    )
    assert code == 2
    assert ("publishable key" in err) == key.startswith("pk_")
    assert "API keys" in err and key not in out + err
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(accounts)) == 0


async def test_stored_secrets_are_encrypted_and_listed_masked(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    await cli(
        database, "accounts", "add", "prod", "--api-key", LIVE_KEY, "--webhook-secret", OTHER_SECRET
    )
    async with engine.connect() as conn:
        row = (await conn.execute(select(accounts))).one()
    assert LIVE_KEY not in repr(row) and OTHER_SECRET not in repr(row)
    code, out, _ = await cli(database, "accounts", "list")
    assert code == 0
    assert "rk_live_...4f2a" in out and LIVE_KEY not in out and "/webhooks/stripe/prod" in out


async def test_a_stored_secret_cannot_be_read_without_the_secret_key(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    await cli(
        database, "accounts", "add", "prod", "--api-key", LIVE_KEY, "--webhook-secret", OTHER_SECRET
    )
    code, _, err = await cli(database, "accounts", "list", LEDGER_SECRET_KEY=new_secret_key())
    assert code == 1 and "cannot be decrypted" in err


async def test_each_account_has_its_own_url_secret_and_mode(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    await cli(
        database,
        "accounts",
        "add",
        "staging",
        "--api-key",
        TEST_KEY,
        "--webhook-secret",
        OTHER_SECRET,
    )
    settings = make_settings(database, LEDGER_SECRET_KEY=SECRET_KEY)
    body = encode(fresh_id(event_2020("invoice_paid")))
    async with app_client(settings) as client:
        ok = await client.post(
            "/webhooks/stripe/staging", content=body, headers=signed(body, OTHER_SECRET)
        )
        wrong_secret = await client.post(
            "/webhooks/stripe/staging",
            content=encode(fresh_id(event_2020("invoice_paid"))),
            headers=signed(body),
        )
        live = fresh_id(event_2020("invoice_paid")) | {"livemode": True}
        live_body = encode(live)
        wrong_mode = await client.post(
            "/webhooks/stripe/staging", content=live_body, headers=signed(live_body, OTHER_SECRET)
        )
    assert (ok.status_code, wrong_secret.status_code, wrong_mode.status_code) == (200, 400, 400)
    assert "live-mode event sent to a test-mode account" in wrong_mode.json()["error"]
    [event] = await event_log.read_after(0)
    assert event.account == "staging"


async def test_a_disabled_account_keeps_its_history_but_receives_nothing(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    await cli(
        database, "accounts", "add", "old", "--mode", "test", "--webhook-secret", OTHER_SECRET
    )
    settings = make_settings(database, LEDGER_SECRET_KEY=SECRET_KEY)
    first, second = (encode(fresh_id(event_2020("invoice_paid"))) for _ in range(2))
    async with app_client(settings) as client:
        assert (
            await client.post(
                "/webhooks/stripe/old", content=first, headers=signed(first, OTHER_SECRET)
            )
        ).status_code == 200
    assert (await cli(database, "accounts", "disable", "old"))[0] == 0
    async with app_client(settings) as client:
        refused = await client.post(
            "/webhooks/stripe/old", content=second, headers=signed(second, OTHER_SECRET)
        )
    assert refused.status_code == 403 and "disabled" in refused.json()["error"]
    assert len(await event_log.read_after(0)) == 1
    assert (await cli(database, "accounts", "enable", "old"))[0] == 0


def fake_account() -> Dataset:
    return Dataset.from_account(simulated_account(customers=4, months=2, seed=9), now=end_of(2))


def endpoint(url: str, events: list[str]) -> dict[str, object]:
    return {
        "id": "we_1",
        "object": "webhook_endpoint",
        "url": url,
        "status": "enabled",
        "enabled_events": events,
    }


async def check_json(
    database: TestDatabase, fake: FakeStripe, key: str
) -> tuple[int, dict[str, object], str]:
    code, out, err = await cli(
        database,
        "check",
        "--json",
        STRIPE_API_KEY=key,
        STRIPE_API_BASE=fake.base_url,
        STRIPE_WEBHOOK_SECRET=OTHER_SECRET,
    )
    return code, json.loads(out), err


async def test_check_proves_the_key_and_finds_the_endpoint_pointing_here(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    await event_log.append([])
    with serve_fake_stripe(fake_account()) as fake:
        fake.webhook_endpoints.append(endpoint("https://ledger.acme.io/webhooks/stripe", ["*"]))
        body_event = fresh_id(event_2020("invoice_paid"))
        from ledger.envelope import Source, parse_event

        await event_log.append(
            [parse_event(encode(body_event), account="default", source=Source.WEBHOOK)]
        )
        code, report, err = await check_json(database, fake, fake.api_key)
    assert code == 0, err
    assert report["ok"] is True and report["key_works"] is True
    assert set(report["permissions"].values()) == {"ok"}  # type: ignore[union-attr]
    assert report["last_event"]["type"] == "invoice.paid"  # type: ignore[index]
    assert fake.api_key not in json.dumps(report)


async def test_check_names_a_missing_permission_and_a_missing_endpoint(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    restricted = "rk_test_" + "NoCharges" + "x" * 12
    with serve_fake_stripe(fake_account()) as fake:
        fake.denied[restricted] = {"charges"}
        fake.webhook_endpoints.append(endpoint("https://elsewhere.example/hooks", ["invoice.paid"]))
        code, report, err = await check_json(database, fake, restricted)
    assert code == 1
    assert report["permissions"]["charges"] == "missing rak_charge_read"  # type: ignore[index]
    assert any("rak_charge_read" in p for p in report["problems"])  # type: ignore[union-attr]
    assert any("no enabled Stripe webhook endpoint points at" in p for p in report["problems"])  # type: ignore[union-attr]
    assert restricted not in json.dumps(report) + err


async def test_scheduled_reconciliation_repairs_what_webhooks_missed(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    dataset = fake_account()
    with serve_fake_stripe(dataset) as fake:
        settings = make_settings(
            database, STRIPE_API_KEY=fake.api_key, STRIPE_API_BASE=fake.base_url
        )
        companion = reconciler(settings, timedelta(days=1), window=timedelta(days=5 * 365))
        async with companion(engine, ["default"]):
            for _ in range(200):
                async with engine.connect() as conn:
                    stored = await conn.scalar(select(func.count()).select_from(ledger_events))
                if stored:
                    break
                await asyncio.sleep(0.05)
    assert stored and stored > 0


def test_a_full_run_never_prints_or_logs_a_secret(database: TestDatabase, tmp_path: Path) -> None:
    """Every output of a run: command output, the server's JSON logs, refusals."""
    env = environment(database, LEDGER_SECRET_KEY=SECRET_KEY, STRIPE_API_KEY=TEST_KEY)
    outputs: list[str] = []
    for args in (
        ["db", "upgrade"],
        ["accounts", "add", "prod", "--api-key", LIVE_KEY, "--webhook-secret", OTHER_SECRET],
        ["accounts", "list"],
        ["accounts", "add", "bad", "--api-key", "pk_live_" + "Publ1sh" * 3],
    ):
        result = run(args, env, cwd=tmp_path)
        outputs += [result.stdout, result.stderr]
    body = encode(fresh_id(event_2020("invoice_paid")))
    with serving(env, tmp_path) as base:
        httpx.post(f"{base}/webhooks/stripe", content=body, headers=signed(body))
        httpx.post(
            f"{base}/webhooks/stripe/prod",
            content=body,
            headers=signed(body, "whsec_wrong" + "x" * 20),
        )
        httpx.post(f"{base}/webhooks/stripe/prod", content=body, headers=signed(body, OTHER_SECRET))
    outputs.append((tmp_path / "serve.log").read_text())
    everything = "\n".join(outputs)
    assert "webhook_stored" in everything  # the logs were captured
    for secret in (TEST_KEY, LIVE_KEY, OTHER_SECRET, SECRET_KEY, "Publ1shPubl1sh"):
        assert secret not in everything


async def test_figures_of_a_test_mode_account_are_labelled(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    await cli(
        database,
        "accounts",
        "add",
        "staging",
        "--api-key",
        TEST_KEY,
        "--webhook-secret",
        OTHER_SECRET,
    )
    code, out, err = await cli(
        database, "metrics", "--period", "2025-01", "--account", "staging", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["mode"] == "test"
    code, table, _ = await cli(database, "metrics", "--period", "2025-01", "--account", "staging")
    assert "TEST MODE" in table


@pytest.mark.parametrize("name", ["shop\n", "Shop", "_shop", "sh op", ""])
async def test_an_account_name_that_cannot_be_part_of_a_url_is_refused_and_nothing_stored(
    database: TestDatabase, engine: AsyncEngine, name: str
) -> None:
    code, _, err = await cli(
        database, "accounts", "add", name, "--mode", "test", "--webhook-secret", OTHER_SECRET
    )
    assert code == 2
    assert "must be lowercase letters" in err
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(accounts)) == 0
