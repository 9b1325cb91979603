"""The installed command, run from an unrelated directory as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.event_log import EventLog
from simulator.stripe_account import BASIL
from tests.support.databases import TestDatabase
from tests.support.feeding import ledger_events
from tests.support.processes import environment, run, serving
from tests.support.scenarios import ALL_SCENARIOS
from tests.support.signing import encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020


def test_db_upgrade_works_from_any_directory(database: TestDatabase, tmp_path: Path) -> None:
    result = run(["db", "upgrade"], environment(database), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "newest schema revision" in result.stdout


def test_serve_stores_a_signed_event_once_and_stats_count_it(
    database: TestDatabase, tmp_path: Path
) -> None:
    env = environment(database)
    body = encode(fresh_id(event_2020("subscription_created")))
    with serving(env, tmp_path) as base:
        assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}
        first = httpx.post(f"{base}/webhooks/stripe", content=body, headers=signed(body))
        again = httpx.post(f"{base}/webhooks/stripe", content=body, headers=signed(body))
        tampered = httpx.post(
            f"{base}/webhooks/stripe",
            content=body.replace(b"active", b"canceled"),
            headers=signed(body),
        )
    assert (first.status_code, again.status_code, tampered.status_code) == (200, 200, 400)
    stats = run(["ledger", "stats", "--json"], env, cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    document = json.loads(stats.stdout)
    assert document["events"] == 1 and document["conflicts"] == 0
    assert document["by_account_type_source"] == [
        {
            "account": "default",
            "type": "customer.subscription.created",
            "source": "webhook",
            "events": 1,
        }
    ]


def test_serve_refuses_to_start_without_a_signing_secret(
    database: TestDatabase, tmp_path: Path
) -> None:
    result = run(["serve"], environment(database, STRIPE_WEBHOOK_SECRET=""), cwd=tmp_path)
    assert result.returncode == 2
    assert "STRIPE_WEBHOOK_SECRET is empty" in result.stderr
    assert "Signing secret" in result.stderr


def test_serve_refuses_a_publishable_key_and_never_prints_it(
    database: TestDatabase, tmp_path: Path
) -> None:
    key = "pk_live_" + "Q" * 24
    result = run(["serve"], environment(database, STRIPE_API_KEY=key), cwd=tmp_path)
    assert result.returncode == 2
    assert "publishable key" in result.stderr
    assert key not in result.stderr + result.stdout


async def test_rebuild_then_explain_names_the_stripe_events_behind_each_movement(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog, tmp_path: Path
) -> None:
    scenario = ALL_SCENARIOS["S5"](BASIL)
    await event_log.append(ledger_events(scenario))
    env = environment(database)
    rebuilt = run(["rebuild"], env, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt 2 customers" in rebuilt.stdout
    explained = run(["explain", "--customer", "cus_L", "--json"], env, cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    story = json.loads(explained.stdout)
    kinds = [(m["effective_at"][:10], m["kind"], m["amount"]) for m in story["movements"]]
    assert kinds[-2:] == [("2025-07-05", "contraction", "40.00"), ("2025-07-20", "churn", "60.00")]
    stored = {e.event_id: e.type for e in await event_log.read_after(0, limit=1000)}
    churn = story["movements"][-1]
    assert [stored[e] for e in churn["event_ids"]] == ["customer.subscription.deleted"]
    assert story["mrr_history"][-1] == story["mrr_history"][-1] | {
        "mrr": "0.00",
        "state": "churned",
    }
    table = run(["explain", "--customer", "cus_L"], env, cwd=tmp_path)
    assert table.returncode == 0 and "contraction" in table.stdout


def test_explain_an_unknown_customer_says_so(database: TestDatabase, tmp_path: Path) -> None:
    env = environment(database)
    assert run(["db", "upgrade"], env, cwd=tmp_path).returncode == 0
    result = run(["explain", "--customer", "cus_nobody"], env, cwd=tmp_path)
    assert result.returncode == 1
    assert "no MRR history for cus_nobody" in result.stderr
