"""Ingest with one and with two `stripe-ledger serve` processes on one PostgreSQL database:
the figures of docs/scaling.md.

    .venv/bin/python -m bench.scale_out [--seconds 10] [--connections 64]

Each setup gets a fresh schema. The load is bench/load.py `saturate` (distinct signed
events over 10,000 customers), one generator process per server process with the
connections split between them, all at once; events/s are summed. Afterwards the ledger
must hold exactly the events answered 2xx. Everything shares the machine's cores: the
servers, their projection workers, PostgreSQL and the generators. Last, the append path
alone (`EventLog.append` in batches, one and four connections), the bound that the
append lock puts on any number of server processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ledger.engine import create_engine
from ledger.envelope import NewEvent, Source, parse_event
from ledger.event_log import EventLog
from ledger.migrate import upgrade
from tests.support.databases import PostgresRun, TestDatabase
from tests.support.deliveries import distinct_events
from tests.support.processes import environment, server_process

ROOT = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy, summed over its cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICKS  # all but idle and iowait


async def _migrate_and_count(database: TestDatabase, *, count: bool) -> int:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        return (await EventLog(engine).stats()).events if count else 0
    finally:
        await engine.dispose()


def _generate(port: int, connections: int, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.load",
            "--port",
            str(port),
            "saturate",
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
            "--warmup",
            "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def measure(
    run: PostgresRun, label: str, processes: int, workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    database = asyncio.run(run.new_schema())
    asyncio.run(_migrate_and_count(database, count=False))
    env = environment(database, LEDGER_LOG_LEVEL="warning")
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        servers = [
            stack.enter_context(
                server_process(env, Path(folder), "--workers", str(workers), log_name=f"s{n}")
            )
            for n in range(processes)
        ]
        busy, started = _machine_busy(), time.monotonic()
        generators = [
            _generate(int(s.base.rsplit(":", 1)[1]), args.connections // processes, args.seconds)
            for s in servers
        ]
        results = [json.loads(g.communicate(timeout=args.seconds + 120)[0]) for g in generators]
        cores_busy = (_machine_busy() - busy) / (time.monotonic() - started)
    stored = asyncio.run(_migrate_and_count(database, count=True))
    ok = sum(int(r["ok"]) for r in results)
    return {
        "setup": label,
        "events_per_second": sum(float(r["events_per_second"]) for r in results),
        "p50_ms": max(float(r["p50_ms"]) for r in results),
        "p99_ms": max(float(r["p99_ms"]) for r in results),
        "non_2xx": sum(sum(r["non_2xx"].values()) + sum(r["errors"].values()) for r in results),
        "answered_2xx": ok,
        "stored": stored,
        "cores_busy": cores_busy,
    }


async def append_ceiling(run: PostgresRun, appenders: int, events: int) -> float:
    """Events/s that `EventLog.append` takes in batches of 256, from `appenders` concurrent
    connections: the serialised append path's own bound, without HTTP or projections."""
    database = await run.new_schema()
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        parsed = [
            parse_event(d.body, account="default", source=Source.WEBHOOK)
            for d in distinct_events(events, customers=10_000, seed=appenders)
        ]
        batches = [parsed[i : i + 256] for i in range(0, len(parsed), 256)]
        log = EventLog(engine)

        async def append(mine: list[list[NewEvent]]) -> None:
            for batch in mine:
                await log.append(batch)

        started = time.monotonic()
        await asyncio.gather(*(append(batches[n::appenders]) for n in range(appenders)))
        elapsed = time.monotonic() - started
        assert (await log.stats()).events == events
        return events / elapsed
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64, help="in all, split evenly")
    args = parser.parse_args()
    setups = [
        ("1 process", 1, 1),
        ("2 processes", 2, 1),
        ("1 process, uvicorn --workers 2", 1, 2),
    ]
    run = PostgresRun()
    run.create()
    try:
        rows = [measure(run, label, n, w, args) for label, n, w in setups]
        ceilings = {n: asyncio.run(append_ceiling(run, n, 20_000)) for n in (1, 4)}
    finally:
        run.drop()
    print(
        f"{os.cpu_count()} cores; saturation, {args.connections} connections in all, "
        f"{args.seconds:g} s after 1 s of warm-up; LEDGER_LOG_LEVEL=warning"
    )
    base = rows[0]["events_per_second"]
    for row in rows:
        verdict = "exact" if row["stored"] == row["answered_2xx"] else "MISMATCH"
        print(
            f"{row['setup']:<32}{row['events_per_second']:>8,.0f} events/s "
            f"({row['events_per_second'] / base:.2f}x)  p50/p99 {row['p50_ms']:.1f}/"
            f"{row['p99_ms']:.1f} ms  cores busy {row['cores_busy']:.2f}  "
            f"non-2xx {row['non_2xx']}  "
            f"ledger {row['stored']:,} rows for {row['answered_2xx']:,} 2xx ({verdict})"
        )
    for appenders, rate in ceilings.items():
        print(
            f"EventLog.append alone, batches of 256, {appenders} connection(s): "
            f"{rate:,.0f} events/s"
        )


if __name__ == "__main__":
    main()
