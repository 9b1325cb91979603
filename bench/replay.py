"""Replay throughput against the local fake Stripe API limited to 100 requests/s.

The bound is what the rate limit allows: 100 objects a page x 100 requests/s. Run:

    .venv/bin/python -m bench.replay [--customers 400] [--months 12] [--engine sqlite|postgresql]

It builds a seeded account (16,000+ objects at the defaults), serves it on loopback from a
process of its own (Stripe does not share our process; in a thread, the fake's own page
building would hold our interpreter's lock) with the fake's 429 limit at 100 requests/s,
runs a full `replay` with our pacer also at 100 requests/s, and prints objects/s,
requests/s and the share of the bound reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
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


def _serve(dataset: Dataset, channel: Connection) -> None:
    """The fake Stripe's process: serve until the parent says stop (or goes away)."""
    # The simulated account is millions of objects that live until the end: without this,
    # each full collection scans them all (300 ms pauses, every few requests).
    gc.freeze()
    with serve_fake_stripe(dataset, rate_limit_per_second=RATE) as fake:
        channel.send((fake.base_url, fake.api_key))
        with contextlib.suppress(EOFError):
            channel.recv()


async def measure(
    url: str, schema: str | None, customers: int, months: int, *, fake_in_thread: bool = False
) -> dict[str, float]:
    started = time.perf_counter()
    account = simulated_account(customers=customers, months=months, seed=1)
    now = end_of(months)
    dataset = Dataset.from_account(account, now=now)
    built = time.perf_counter() - started
    engine = create_engine(url, schema=schema)
    await upgrade(engine)
    objects_in_dataset = 0
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    server = multiprocessing.get_context("fork").Process(
        target=_serve, args=(dataset, theirs), daemon=True
    )
    try:
        if fake_in_thread:
            base_url, api_key = "", ""
        else:
            server.start()
            base_url, api_key = ours.recv()
            # A replay process holds no simulated account: nor should its collector scan one.
            objects_in_dataset = dataset.object_count()
            del account
            dataset = Dataset(now=now)
            gc.collect()
            gc.freeze()
        with serve_fake_stripe(dataset, rate_limit_per_second=RATE) as fake:
            objects_in_dataset = objects_in_dataset or dataset.object_count()
            if fake_in_thread:
                base_url, api_key = fake.base_url, fake.api_key
            api = StripeApi(api_key, base_url=base_url, requests_per_second=RATE)
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
        if server.is_alive():
            ours.send("stop")
            server.join(timeout=10)
        await engine.dispose()
    return {
        "objects_in_dataset": float(objects_in_dataset),
        "build_seconds": built,
        "fetched": float(report.fetched),
        "appended": float(report.appended),
        "seconds": report.seconds,
        "requests": float(report.requests),
        "fetch_requests": float(report.fetch_requests),
        "rate_limited": float(report.rate_limited),
        "fetch_seconds": report.fetch_seconds,
        "catch_up_seconds": report.catch_up_seconds,
        "objects_per_second": report.fetched / report.fetch_seconds,
        "requests_per_second": report.fetch_requests / report.fetch_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--fake-in-thread",
        action="store_true",
        help="serve the fake Stripe from a thread of this process (as the tests do)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.engine == "sqlite":
            url, schema, run = f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}", None, None
        else:
            run = PostgresRun()
            run.create()
            url, schema = run.url, None
        try:
            result = asyncio.run(
                measure(
                    url, schema, args.customers, args.months, fake_in_thread=args.fake_in_thread
                )
            )
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
    # Each list ends on a page of fewer than 100: what the limit allows for these very pages
    # is one page per 1/RATE s, whatever is on it.
    pages_bound = result["fetched"] / (result["fetch_requests"] / RATE)
    print(
        f"  for these {int(result['fetch_requests'])} pages the limit allows "
        f"{pages_bound:.0f} objects/s: {rate / pages_bound:.1%}"
    )
    print(
        f"  listing: {int(result['fetch_requests'])} requests, "
        f"{result['requests_per_second']:.1f} requests/s "
        f"({result['requests_per_second'] / RATE:.1%} of the limit); "
        f"{int(result['requests'])} requests in all, {int(result['rate_limited'])} rate-limited"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
