"""How fresh the read models are under load, and how fast a period's figures come back.

    .venv/bin/python -m bench.freshness lag [--rate 1000] [--seconds 20]
    .venv/bin/python -m bench.freshness queries [--customers 20000] [--months 60] [--keep]

`lag`: a simulated account of 2,000 customers whose 24-month history ends now goes into a
fresh PostgreSQL database, projections built, all but its last --seconds x --rate webhook
events; then `stripe-ledger serve` (2 workers) receives those last events at --rate from
bench/load.py, as a live account would (its customers have a history, and the events are
recent, so the monthly figures to refresh are the last month or two). Meanwhile this process
polls, every 10 ms, the ledger's last committed position and the projection runner's
position. For each position first seen committed, the lag is the time until the runner's
position reached it: by then every movement row of that event is written. Polling adds up
to 10 ms to each figure. It stops once the runner has caught up, or 300 s after the load;
positions not reached by then count with the time waited, printed as lower bounds.

`queries`: a simulated account of --customers customers over --months months goes into a
PostgreSQL database (kept with --keep, and reused when it exists), its projections built;
then, for every month, the time of `metrics --period YYYY-MM`'s computation (the same
function, on the read models) and of reading that month's row of `monthly_metrics`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import asyncpg
import orjson
from sqlalchemy import select

from bench.ingest import BIN, ROOT, Target, serving
from ledger.engine import create_engine
from ledger.migrate import upgrade
from ledger.schema import monthly_metrics
from projections import metrics as figures
from projections.account_config import load_config
from projections.fx import load_rates
from projections.periods import add_months
from projections.runner import ProjectionRunner
from simulator.fx_rates import store_simulated_rates
from simulator.life import START, AccountLife, end_of
from simulator.outputs import append_to_ledger, is_snapshot
from tests.support.databases import ADMIN_URL, PostgresRun

_POLL_SECONDS = 0.01
_DRAIN_SECONDS = 300.0  # after the load, how long to wait for the runner to catch up


# --- lag -------------------------------------------------------------------------------------


_LIVE_CUSTOMERS, _LIVE_MONTHS = 2000, 24


def _live_account() -> AccountLife:
    now = datetime.now(UTC).replace(microsecond=0)
    return AccountLife(_LIVE_CUSTOMERS, _LIVE_MONTHS, seed=3, start=add_months(now, -_LIVE_MONTHS))


async def _preload(url: str, path: Path, sent: int) -> int:
    """Everything but the last `sent` webhook events into the ledger, projections built;
    those last events into a JSONL file for the load generator. Returns the preloaded count."""
    webhooks = sum(1 for record in _live_account() if not is_snapshot(record))
    cut = webhooks - sent
    if cut < 0:
        raise RuntimeError(f"the simulated account has only {webhooks} webhook events")
    seen = 0

    def history(out: IO[bytes]) -> Iterator[dict[str, Any]]:
        nonlocal seen
        for record in _live_account():
            if not is_snapshot(record):
                seen += 1
                if seen > cut:
                    out.write(orjson.dumps(record) + b"\n")
                    continue
            yield record

    engine = create_engine(url)
    try:
        await upgrade(engine)
        with path.open("wb") as out:
            delivered = await append_to_ledger(history(out), engine, "default", batch=5000)
        live = _live_account()
        await store_simulated_rates(engine, live.start.date(), live.end.date(), 3)
        await ProjectionRunner(engine).catch_up("default")
    finally:
        await engine.dispose()
    return delivered.stored


class _Poller(threading.Thread):
    """Samples (time, committed position, projected position) until stopped."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        asyncio.run(self._poll())

    async def _poll(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not self.stop.is_set():
                committed = await conn.fetchval(
                    "SELECT coalesce(max(position), 0) FROM ledger_events"
                )
                projected = await conn.fetchval(
                    "SELECT coalesce(max(position), 0) FROM projection_positions"
                    " WHERE account = 'default'"
                )
                self.samples.append((time.perf_counter(), int(committed), int(projected)))
                await asyncio.sleep(_POLL_SECONDS)
        finally:
            await conn.close()


def lags(samples: list[tuple[float, int, int]]) -> tuple[list[float], list[float]]:
    """For each position first seen committed, seconds until the runner had passed it; and
    for each position it had not passed when polling stopped, the seconds waited so far
    (a lower bound of its lag)."""
    found: list[float] = []
    waiting: list[tuple[float, int]] = []  # (first seen, position), in position order
    last_committed = 0
    for at, committed, projected in samples:
        if committed > last_committed:
            waiting.append((at, committed))
            last_committed = committed
        while waiting and waiting[0][1] <= projected:
            found.append(at - waiting.pop(0)[0])
    end = samples[-1][0] if samples else 0.0
    return found, [end - seen for seen, _ in waiting]


def measure_lag(rate: float, seconds: float) -> None:
    total = round(rate * seconds)
    run = PostgresRun()
    run.create()
    try:
        with tempfile.TemporaryDirectory() as folder:
            events = Path(folder) / "events.jsonl"
            preloaded = asyncio.run(_preload(run.url, events, total))
            print(f"preloaded {preloaded:,} events of {_LIVE_CUSTOMERS:,} customers", flush=True)
            target = Target("ledger", "stripe-ledger", "ledger_events")
            with serving(target, run.url, 2, Path(folder)) as server:
                poller = _Poller(run.url)
                poller.start()
                load = subprocess.run(
                    [
                        str(BIN / "python"),
                        "-m",
                        "bench.load",
                        "--port",
                        str(server.port),
                        "--events-file",
                        str(events),
                        "rate",
                        "--rate",
                        str(rate),
                        "--seconds",
                        str(seconds),
                    ],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=True,
                )
                deadline = time.perf_counter() + _DRAIN_SECONDS
                while time.perf_counter() < deadline:
                    if poller.samples and poller.samples[-1][2] >= poller.samples[-1][1] > 0:
                        break
                    time.sleep(0.1)
                poller.stop.set()
                poller.join()
        sent = json.loads(load.stdout)
        found, unreached = lags(poller.samples)
        # Positions never reached count with the time waited: the figures are then lower
        # bounds, and say so, rather than the lag of the lucky early events alone.
        every = sorted(found + unreached)
        bound = "at least " if unreached else ""
        print(
            f"offered {rate:,.0f} events/s for {seconds:.0f} s: {sent['ok']} answered 2xx, "
            f"p50 {sent['p50_ms']:.1f} ms, p99 {sent['p99_ms']:.1f} ms"
        )
        print(
            f"read-model lag over {len(every)} committed positions seen "
            f"({len(unreached)} not reached {_DRAIN_SECONDS:.0f} s after the load): "
            f"p50 {bound}{_pct(every, 0.5):.3f} s, p99 {bound}{_pct(every, 0.99):.3f} s, "
            f"max {bound}{every[-1]:.3f} s"
        )
    finally:
        run.drop()


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# --- queries ---------------------------------------------------------------------------------


async def _build(url: str, customers: int, months: int) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        started = time.perf_counter()
        delivered = await append_to_ledger(
            AccountLife(customers, months, seed=11), engine, "default", batch=5000
        )
        appended = time.perf_counter()
        await store_simulated_rates(engine, START.date(), end_of(months).date(), 11)
        # A rebuild derives each customer once; catching up on millions of events would
        # derive them once per window. Both give identical tables.
        await ProjectionRunner(engine).rebuild("default", now=end_of(months))
        print(
            f"built: {delivered.stored:,} events appended in {appended - started:.0f} s, "
            f"projections in {time.perf_counter() - appended:.0f} s",
            flush=True,
        )
    finally:
        await engine.dispose()


async def _time_months(url: str, months: int) -> tuple[list[float], list[float]]:
    engine = create_engine(url)
    computed, read = [], []
    try:
        async with engine.connect() as conn:
            config = await load_config(conn, "default", "usd")
            rates = await load_rates(conn, "usd")
            for n in range(months):
                start = add_months(START, n)
                t0 = time.perf_counter()
                await figures.period(conn, "default", start, add_months(start, 1), config, rates)
                t1 = time.perf_counter()
                await conn.execute(
                    select(monthly_metrics).where(
                        monthly_metrics.c.account == "default",
                        monthly_metrics.c.month == start.date(),
                    )
                )
                t2 = time.perf_counter()
                computed.append(t1 - t0)
                read.append(t2 - t1)
    finally:
        await engine.dispose()
    return computed, read


def measure_queries(customers: int, months: int, keep: bool) -> None:
    name = f"bench_freshness_{customers}_{months}"
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    exists = asyncio.run(_database_exists(name))
    if not exists:
        asyncio.run(_create_database(name))
        asyncio.run(_build(url, customers, months))
    try:
        computed, read = asyncio.run(_time_months(url, months))
        print(f"{customers:,} customers over {months} months, every month:")
        for label, values in (
            ("metrics --period (computed)", computed),
            ("monthly_metrics row", read),
        ):
            ordered = sorted(values)
            print(
                f"  {label}: median {statistics.median(ordered) * 1000:.1f} ms, "
                f"max {ordered[-1] * 1000:.1f} ms"
            )
    finally:
        if not keep:
            asyncio.run(_drop_database(name))


async def _admin(statement: str) -> Any:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        return await conn.fetchval(statement)
    finally:
        await conn.close()


async def _database_exists(name: str) -> bool:
    return bool(await _admin(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))


async def _create_database(name: str) -> None:
    await _admin(f'CREATE DATABASE "{name}"')


async def _drop_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    lag = modes.add_parser("lag")
    lag.add_argument("--rate", type=float, default=1000.0)
    lag.add_argument("--seconds", type=float, default=20.0)
    queries = modes.add_parser("queries")
    queries.add_argument("--customers", type=int, default=20_000)
    queries.add_argument("--months", type=int, default=60)
    queries.add_argument("--keep", action="store_true", help="Keep the database for reruns.")
    args = parser.parse_args()
    if args.mode == "lag":
        measure_lag(args.rate, args.seconds)
    else:
        measure_queries(args.customers, args.months, args.keep)


if __name__ == "__main__":
    main()
