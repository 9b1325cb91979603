"""`accounts add`, `disable` and `enable`, run while `serve --workers 2` is running, reach
every worker within seconds, without a restart."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.secrets import new_secret_key
from tests.support.databases import TestDatabase
from tests.support.processes import environment, run, server_process
from tests.support.signing import OTHER_SECRET, encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020

# Fresh connections, several at once, so both workers' accept loops take some of a round.
ROUND, PARALLEL = 24, 8
SETTLE_SECONDS = 15.0


def deliver(url: str) -> int:
    body = encode(fresh_id(event_2020("invoice_paid")))
    headers = signed(body, OTHER_SECRET) | {"Connection": "close"}
    return httpx.post(url, content=body, headers=headers, timeout=10).status_code


def settles_on(url: str, status: int) -> list[int]:
    """Rounds of deliveries until one is answered `status` throughout (bounded); the last
    round's answers."""
    deadline = time.monotonic() + SETTLE_SECONDS
    with ThreadPoolExecutor(PARALLEL) as pool:
        while True:
            answers = list(pool.map(deliver, [url] * ROUND))
            if set(answers) == {status} or time.monotonic() > deadline:
                return answers
            time.sleep(0.2)


def test_disable_and_enable_reach_every_worker_of_a_running_server(
    database: TestDatabase, engine: AsyncEngine, tmp_path: Path
) -> None:
    env = environment(database, LEDGER_SECRET_KEY=new_secret_key())
    with server_process(env, tmp_path, "--workers", "2") as server:
        url = f"{server.base}/webhooks/stripe/shop"
        added = run(
            ["accounts", "add", "shop", "--mode", "test", "--webhook-secret", OTHER_SECRET],
            env,
            tmp_path,
        )
        assert added.returncode == 0, added.stderr
        assert settles_on(url, 200) == [200] * ROUND
        assert run(["accounts", "disable", "shop"], env, tmp_path).returncode == 0
        assert settles_on(url, 403) == [403] * ROUND
        assert run(["accounts", "enable", "shop"], env, tmp_path).returncode == 0
        assert settles_on(url, 200) == [200] * ROUND
