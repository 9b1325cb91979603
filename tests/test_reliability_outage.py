"""A database outage: PostgreSQL becomes unreachable in the middle of a load. Every
delivery meanwhile is answered 503 (so Stripe retries), never 2xx and never a traceback,
and the same server process recovers by itself once the database is back."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.databases import TestDatabase
from tests.support.deliveries import Sender, distinct_events, with_duplicates
from tests.support.processes import environment, start_server
from tests.support.reliability import (
    stored_event_ids,
    until_runner_lock,
    wait_until_projected,
)
from tests.support.tcp_proxy import TcpProxy

EVENTS = 2_000
UNAVAILABLE = {"error": "ledger unavailable, retry later"}
# Long enough for dozens of deliveries to meet the outage; short enough for a quick test.
OUTAGE_SECONDS = 3.0

pytestmark = pytest.mark.slow


def through(proxy: TcpProxy, database: TestDatabase) -> TestDatabase:
    url = make_url(database.url).set(host="127.0.0.1", port=proxy.port)
    return replace(database, url=url.render_as_string(hide_password=False))


async def test_an_outage_mid_load_gets_503s_then_recovers_without_a_restart(
    postgres_database: TestDatabase, postgres_engine: AsyncEngine, tmp_path: Path
) -> None:
    target = make_url(postgres_database.url)
    events = distinct_events(EVENTS, customers=200, seed=3)
    deliveries = with_duplicates(events, 0.10, seed=3)
    with TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        env = environment(through(proxy, postgres_database), LEDGER_COMMIT_TIMEOUT_SECONDS="2")
        server = await asyncio.to_thread(start_server, env, tmp_path)
        sender = Sender([server.base], deliveries, concurrency=16)
        ready_during_outage: list[httpx.Response] = []

        async def outage() -> tuple[float, float]:
            await sender.acknowledgements(len(deliveries) // 4)
            await until_runner_lock(
                postgres_engine
            )  # the projection runner is cut off mid-transaction too
            proxy.cut()
            cut_at = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS)
            async with httpx.AsyncClient() as client:
                ready_during_outage.append(await client.get(f"{server.base}/readyz"))
            restored_at = time.monotonic()
            proxy.restore()
            return cut_at, restored_at

        try:
            _, (cut_at, restored_at) = await asyncio.gather(
                sender.run(deadline_seconds=90), outage()
            )
            await wait_until_projected(postgres_engine, give_up_after=60, logs=[server.log_path])
            still_running = server.process.poll() is None
        finally:
            server.stop()

    during = [a for a in sender.attempts if a.sent_at > cut_at and a.answered_at < restored_at]
    after = [a for a in sender.attempts if a.sent_at > restored_at]
    assert len(during) >= 20, "too few deliveries met the outage"
    assert {a.status for a in during} == {503}
    assert all(json.loads(a.text) == UNAVAILABLE for a in sender.attempts if a.status == 503)
    assert set(sender.statuses) == {200, 503}  # nothing else, at any time: no 5xx page
    assert [r.status_code for r in ready_during_outage] == [503]
    assert still_running
    recovered_in = min(a.answered_at for a in after if a.status == 200) - restored_at
    assert recovered_in < 10
    assert await stored_event_ids(postgres_engine) == {e.event_id: 1 for e in events}
    log = (tmp_path / "serve.log").read_text()
    assert "webhook_not_stored" in log
    assert "Traceback" not in log
