"""Secrets stay secret on the failure paths too: a full run that goes through refusals, a
database outage, a key Stripe rejects and a failing reconciliation prints and logs no API
key, signing secret, encryption key or database password, and no answer echoes one."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from ledger.secrets import new_secret_key
from tests.support.databases import TestDatabase
from tests.support.fake_stripe import Dataset, serve_fake_stripe
from tests.support.processes import environment, run, start_server
from tests.support.signing import OTHER_SECRET, SECRET, encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020
from tests.support.tcp_proxy import TcpProxy

# Each distinctive, so finding any part of one in the output is unambiguous.
REJECTED_KEY = "sk_test_" + "Rej3ctedByStr1pe-" + uuid.uuid4().hex[:8]  # the fake refuses '-'
LIVE_KEY = "rk_live_" + "L1veKeyN0tF0rPr1nt1ng" + uuid.uuid4().hex[:8]
PROD_SECRET = "whsec_prod_" + uuid.uuid4().hex
PASSWORD = "pw_" + uuid.uuid4().hex
SECRET_KEY = new_secret_key()
PUBLISHABLE = "pk_live_" + uuid.uuid4().hex


@pytest.mark.slow
async def test_a_run_through_every_failure_path_never_prints_or_logs_a_secret(
    postgres_database: TestDatabase, tmp_path: Path
) -> None:
    database = postgres_database
    target = make_url(database.url)
    outputs: list[str] = []

    def command(*args: str) -> None:
        result = run(list(args), env, cwd=tmp_path)
        outputs.extend([result.stdout, result.stderr])

    async def post(path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{server.base}{path}", content=body, headers=headers)
        outputs.append(response.text)
        return response

    body = encode(fresh_id(event_2020("invoice_paid")))
    live = encode(fresh_id(event_2020("invoice_paid")) | {"livemode": True})  # prod is live
    with (
        serve_fake_stripe(Dataset(now=int(time.time()))) as stripe,
        TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy,
    ):
        # The password is in the URL; PostgreSQL's trust authentication ignores it.
        url = target.set(port=proxy.port, password=PASSWORD)
        env = environment(
            replace(database, url=url.render_as_string(hide_password=False)),
            STRIPE_WEBHOOK_SECRET=f"{SECRET}, {OTHER_SECRET}",
            STRIPE_API_KEY=REJECTED_KEY,
            STRIPE_API_BASE=stripe.base_url,
            LEDGER_SECRET_KEY=SECRET_KEY,
        )
        command("db", "upgrade")
        command("accounts", "add", "prod", "--api-key", LIVE_KEY, "--webhook-secret", PROD_SECRET)
        command("accounts", "add", "bad", "--api-key", PUBLISHABLE)
        command("accounts", "list")
        command("check")  # Stripe answers 401 for the key
        server = await asyncio.to_thread(start_server, env, tmp_path, "--reconcile", "hourly")
        try:
            statuses = [
                (await post("/webhooks/stripe", body, signed(body))).status_code,
                (await post("/webhooks/stripe", body, signed(body, OTHER_SECRET))).status_code,
                (await post("/webhooks/stripe/prod", live, signed(live, PROD_SECRET))).status_code,
                (await post("/webhooks/stripe/prod", live, signed(live))).status_code,
                (await post("/webhooks/stripe", body, signed(body, timestamp=1))).status_code,
                (await post("/webhooks/stripe", body, {"Stripe-Signature": SECRET})).status_code,
            ]
            proxy.cut()
            statuses.append((await post("/webhooks/stripe", body, signed(body))).status_code)
            command("ledger", "stats")
            await asyncio.sleep(1.5)  # the projection worker meets the outage too
            proxy.restore()
        finally:
            server.stop()
    outputs.append(server.log_path.read_text())
    everything = "\n".join(outputs)

    assert statuses == [200, 200, 200, 400, 400, 400, 503]
    for line in ("webhook_refused", "webhook_not_stored", "reconcile_failed", "the API key"):
        assert line in everything, f"{line}: that failure path was not taken"
    for secret in (SECRET, OTHER_SECRET, PROD_SECRET, REJECTED_KEY, LIVE_KEY, SECRET_KEY):
        assert secret not in everything
    assert PASSWORD not in everything and PUBLISHABLE not in everything
