"""The installed command, run from an unrelated directory as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support.databases import TestDatabase
from tests.support.processes import environment, run, serving
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
