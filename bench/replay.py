"""Replay throughput against the local fake Stripe API limited to 100 requests/s.

The bound is what the rate limit allows: 100 objects a page x 100 requests/s. Run:

    .venv/bin/python -m bench.replay [--customers 400] [--months 12] [--engine sqlite|postgresql]

It builds a seeded account (11,000+ objects at the defaults), serves it on loopback with
the fake's 429 limit at 100 requests/s, runs a full `replay` with our limiter also at
100 requests/s, and prints objects/s, requests/s and the share of the bound reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from ledger.engine import create_engine
from ledger.migrate import upgrade
from replay.client import StripeApi
from replay.run import Replay
from simulator.life import end_of, simulated_account
from tests.support.databases import PostgresRun
from tests.support.fake_stripe import Dataset, serve_fake_stripe

RATE = 100.0
PAGE = 100


async def measure(url: str, schema: str | None, customers: int, months: int) -> dict[str, float]:
    started = time.perf_counter()
    account = simulated_account(customers=customers, months=months, seed=1)
    now = end_of(months)
    dataset = Dataset.from_account(account, now=now)
    built = time.perf_counter() - started
    engine = create_engine(url, schema=schema)
    await upgrade(engine)
    try:
        with serve_fake_stripe(dataset, rate_limit_per_second=RATE) as fake:
            api = StripeApi(fake.api_key, base_url=fake.base_url, requests_per_second=RATE)
            replay = Replay(
                engine,
                api,
                account="default",
                since=datetime(2023, 12, 1, tzinfo=UTC),
                until=now,
                livemode=False,
                now=lambda: now,
            )
            report = await replay.run()
    finally:
        await engine.dispose()
    return {
        "objects_in_dataset": float(dataset.object_count()),
        "build_seconds": built,
        "fetched": float(report.fetched),
        "appended": float(report.appended),
        "seconds": report.seconds,
        "requests": float(report.requests),
        "rate_limited": float(report.rate_limited),
        "fetch_seconds": report.fetch_seconds,
        "catch_up_seconds": report.catch_up_seconds,
        "objects_per_second": report.fetched / report.fetch_seconds,
        "requests_per_second": report.requests / report.fetch_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.engine == "sqlite":
            url, schema, run = f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}", None, None
        else:
            run = PostgresRun()
            run.create()
            url, schema = run.url, None
        try:
            result = asyncio.run(measure(url, schema, args.customers, args.months))
        finally:
            if run is not None:
                run.drop()
    bound = RATE * PAGE
    fetched, rate = int(result["fetched"]), result["objects_per_second"]
    print(
        f"engine {args.engine}: {fetched} objects fetched ({int(result['appended'])} appended); "
        f"fetching {result['fetch_seconds']:.1f} s, projections catching up "
        f"{result['catch_up_seconds']:.1f} s, total {result['seconds']:.1f} s"
    )
    print(
        f"  fetching: {rate:.0f} objects/s; bound {bound:.0f} objects/s "
        f"(100 objects/page x {RATE:.0f} requests/s): {rate / bound:.1%}"
    )
    print(
        f"  {int(result['requests'])} requests, {result['requests_per_second']:.1f} requests/s "
        f"({result['requests_per_second'] / RATE:.1%} of the limit), "
        f"{int(result['rate_limited'])} rate-limited"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
