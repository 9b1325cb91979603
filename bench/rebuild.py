"""Full rebuild of the read models against a raw scan of the same ledger.

    .venv/bin/python -m bench.rebuild [--events 100000 1000000] [--engine sqlite|postgresql]

For each size, it fills a fresh ledger with about that many events of a simulated account
(`stripe-ledger simulate`, streamed in), then, each in a child process of its own so its
peak memory is its own: a raw scan that reads and parses every ledger payload (the
baseline), and `stripe-ledger rebuild`. It prints events/s for both, their ratio, and
peak RSS, so the sizes show whether memory stays flat.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from sqlalchemy import select

from ledger.engine import create_engine
from ledger.migrate import upgrade
from ledger.schema import ledger_events
from projections.runner import ProjectionRunner
from simulator.fx_rates import store_simulated_rates
from simulator.life import AccountLife
from simulator.outputs import append_to_ledger
from tests.support.databases import PostgresRun

MONTHS = 24
EVENTS_PER_CUSTOMER = 133  # measured on the simulator over 24 months


async def fill(url: str, events: int) -> int:
    customers = max(1, round(events / EVENTS_PER_CUSTOMER))
    engine = create_engine(url)
    await upgrade(engine)
    life = AccountLife(customers, MONTHS, seed=7)
    delivered = await append_to_ledger(life, engine, "default", batch=5000)
    await store_simulated_rates(engine, life.start.date(), life.end.date(), 7)
    await engine.dispose()
    return delivered.stored


async def raw_scan(url: str) -> int:
    """The baseline: read every payload in position order and parse it (same JSON library)."""
    engine = create_engine(url)
    count = 0
    async with engine.connect() as conn:
        result = await conn.stream(
            select(ledger_events.c.payload).order_by(ledger_events.c.position)
        )
        async for (payload,) in result:
            orjson.loads(payload)
            count += 1
    await engine.dispose()
    return count


async def rebuild(url: str) -> int:
    engine = create_engine(url)
    customers = await ProjectionRunner(engine).rebuild("default")
    await engine.dispose()
    return customers


def child(task: str, url: str) -> None:
    """Run one measured task in this (child) process and print seconds and peak RSS."""
    started = time.perf_counter()
    asyncio.run(raw_scan(url) if task == "scan" else rebuild(url))
    seconds = time.perf_counter() - started
    print(orjson.dumps({"seconds": seconds, "peak_mib": _peak_mib()}).decode())


def _peak_mib() -> float:
    """This process image's peak RSS. Not ru_maxrss: Linux carries that across fork and
    exec, so a child would report the parent's peak (the account built to fill the ledger)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(task: str, url: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.rebuild", "--child", task, "--url", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    last_line: dict[str, float] = orjson.loads(output.strip().splitlines()[-1])
    return last_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--child", choices=("scan", "rebuild"))
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url)
        return
    print(f"engine {args.engine}")
    print("| events | raw scan | rebuild | rebuild / raw scan | peak RSS scan / rebuild |")
    print("|---|---|---|---|---|")
    for size in args.events:
        stored, scan, built = _measure_size(args.engine, size)
        scan_rate, rebuild_rate = stored / scan["seconds"], stored / built["seconds"]
        print(
            f"| {stored:,} | {scan_rate:,.0f} events/s | {rebuild_rate:,.0f} events/s "
            f"({built['seconds']:.1f} s) | {rebuild_rate / scan_rate:.1%} "
            f"| {scan['peak_mib']:.0f} / {built['peak_mib']:.0f} MiB |",
            flush=True,
        )


def _measure_size(engine: str, size: int) -> tuple[int, dict[str, float], dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        run = None
        if engine == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}"
        else:
            run = PostgresRun()
            run.create()
            url = run.url
        try:
            stored = asyncio.run(fill(url, size))
            return stored, measure("scan", url), measure("rebuild", url)
        finally:
            if run is not None:
                run.drop()


if __name__ == "__main__":
    main()
