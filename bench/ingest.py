"""Webhook ingest on PostgreSQL: stripe-ledger against two baselines measured in the same run.

    .venv/bin/python -m bench.ingest [--seconds 10] [--rate 1000] [--connections 64]

Three servers, one after the other, each under uvicorn with as many workers as cores:
- bare: a Starlette endpoint that reads the body and answers 200 (the HTTP ceiling);
- naive durable: the signature verified with `stripe`, one INSERT of the raw body and one
  commit per request through asyncpg (bench/ingest_baselines.py);
- stripe-ledger: `stripe-ledger serve` on a fresh PostgreSQL database, as deployed: the
  projection worker runs in each worker process; LEDGER_LOG_LEVEL=warning (--log-level).

Each gets a 1 s warm-up, then the fixed offered rate (open loop, bench/load.py `rate`):
achieved events/s and p50/p99 latency; then saturation (closed loop on --connections
connections): events/s in a window after 1 s of ramp-up. The fixed rate comes first so the
projection worker is not still catching up on a saturation backlog while it is measured.
The load generator is a process of its own on the same cores; the CPU each side used is
printed, with what other processes took meanwhile (the machine is shared). Afterwards the
ledger's and the naive table's row counts are checked against the number of events sent.
Targets (issue 7): stripe-ledger saturated >= 100% of naive durable, and p99 under 50 ms
at 1,000 events/s offered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.ingest_baselines import NAIVE_TABLE, create_naive_table
from tests.support.databases import PostgresRun
from tests.support.processes import wait_until_healthy
from tests.support.signing import SECRET

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
P99_TARGET_MS = 50.0
_NOISE_CORES = 0.25  # "rest" above this: something else was running on the machine
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    pid: int
    port: int
    database: str  # its PostgreSQL database's name, to tell its backends from others'


@dataclass
class Target:
    key: str
    label: str
    table: str | None  # where its events end up, checked afterwards
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    stored: int | None = None


def _server_command(target: Target, port: int, workers: int) -> list[str]:
    if target.key == "ledger":
        return [str(BIN / "stripe-ledger"), "serve", "--workers", str(workers), "--port", str(port)]
    factory = "bare_app" if target.key == "bare" else "naive_app"
    return [
        str(BIN / "python"),
        "-m",
        "uvicorn",
        f"bench.ingest_baselines:{factory}",
        "--factory",
        "--app-dir",
        str(ROOT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(
    target: Target, database_url: str, workers: int, folder: Path, log_level: str = "warning"
) -> Iterator[Server]:
    """The target's server in a child process (its own session), once /healthz answers."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "LEDGER_DATABASE_URL": database_url,
        "NAIVE_DATABASE_URL": database_url,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "LEDGER_LOG_LEVEL": log_level,
    }
    log_path = folder / f"{target.key}.log"
    with log_path.open("w") as log:  # a file, not a pipe: a chatty server never blocks
        process = subprocess.Popen(
            _server_command(target, port, workers),
            env=env,
            cwd=folder,  # no stray .env is read
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_healthy(process, f"http://127.0.0.1:{port}", log_path, target.label)
        yield Server(process.pid, port, database_url.rsplit("/", 1)[1])
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the session started above, ours alone
            process.wait(timeout=10)


@dataclass(frozen=True)
class _Process:
    parent: int
    name: str
    cpu: float  # user + system seconds
    command: str  # read for PostgreSQL's processes only


def _processes() -> dict[int, _Process]:
    found: dict[int, _Process] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS
        command = ""
        if name == "postgres":
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
        found[int(entry.name)] = _Process(int(fields[1]), name, cpu, command)
    return found


def _descendants(root: int, processes: dict[int, _Process]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, process in processes.items():
        children.setdefault(process.parent, []).append(pid)
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        found.add(pid)
        stack.extend(children.get(pid, []))
    return found


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy, summed over cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICKS


def _cpu_split(
    server: Server, before: dict[int, _Process], after: dict[int, _Process]
) -> dict[str, float]:
    """CPU seconds spent between two snapshots by the server's processes and by PostgreSQL's
    for it: the backends connected to its database, and the shared ones (WAL writer,
    checkpointer...), not other databases' backends. A backend that exited in between is
    lost; the pools keep theirs open."""
    tree = _descendants(server.pid, after)
    spent = {"server": 0.0, "postgres": 0.0}
    for pid, process in after.items():
        group = None
        if pid in tree:
            group = "server"
        elif process.name == "postgres":
            client = "(" in process.command  # "postgres: 15/main: user db 127.0.0.1(port) ..."
            if not client or f" {server.database} " in process.command:
                group = "postgres"
        if group is not None:
            previous = before.get(pid)
            same = previous is not None and previous.name == process.name
            spent[group] += process.cpu - (previous.cpu if same and previous else 0.0)
    return spent


def load(server: Server, customers: int, *args: str) -> dict[str, Any]:
    """One run of bench/load.py in its own process, with the CPU each side spent meanwhile."""
    before, busy_before = _processes(), _machine_busy()
    started = time.monotonic()
    finished = subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "bench.load",
            "--port",
            str(server.port),
            "--customers",
            str(customers),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    wall = time.monotonic() - started
    spent = _cpu_split(server, before, _processes())
    busy = _machine_busy() - busy_before
    if finished.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{finished.stderr[-3000:]}")
    document: dict[str, Any] = json.loads(finished.stdout)
    generator = document["client_cpu_seconds"]
    rest = busy - spent["server"] - spent["postgres"] - generator
    document["cpu_cores"] = {
        "server": spent["server"] / wall,
        "generator": generator / wall,
        "postgres": spent["postgres"] / wall,
        "other": max(0.0, rest) / wall,
        "machine": busy / wall,
    }
    return document


async def _count(url: str, table: str) -> int:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        value = await conn.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await conn.close()
    return int(value)


def measure(target: Target, url: str, args: argparse.Namespace, folder: Path) -> None:
    with serving(target, url, args.workers, folder, args.log_level) as server:
        target.results["warmup"] = load(
            server,
            args.customers,
            "saturate",
            "--connections",
            "8",
            "--seconds",
            "1",
            "--warmup",
            "0",
        )
        target.results["rate"] = load(
            server, args.customers, "rate", "--rate", str(args.rate), "--seconds", str(args.seconds)
        )
        time.sleep(1.0)  # let the answers and the projection worker settle
        target.results["saturate"] = load(
            server,
            args.customers,
            "saturate",
            "--connections",
            str(args.connections),
            "--seconds",
            str(args.seconds),
            "--warmup",
            "1",
        )
    if target.table is not None:
        target.stored = asyncio.run(_count(url, target.table))


def _sent(target: Target) -> int:
    return sum(int(run["sent"]) for run in target.results.values())


def _ok(target: Target) -> int:
    return sum(int(run["ok"]) for run in target.results.values())


def _problems(target: Target) -> str:
    bad: dict[str, int] = {}
    for run in target.results.values():
        for status, n in run["non_2xx"].items():
            bad[status] = bad.get(status, 0) + n
        for error, n in run["errors"].items():
            bad[error] = bad.get(error, 0) + n
    return ", ".join(f"{n} x {what}" for what, n in sorted(bad.items())) or "none"


def report(
    targets: list[Target], args: argparse.Namespace, background: float, elapsed: float
) -> None:
    bare, naive, ledger = targets
    bare_rate = bare.results["saturate"]["events_per_second"]
    naive_rate = naive.results["saturate"]["events_per_second"]
    print(
        f"bench.ingest {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} cores, "
        f"uvicorn --workers {args.workers}, PostgreSQL; saturation {args.connections} "
        f"connections x {args.seconds:g} s; open loop {args.rate:,.0f}/s x {args.seconds:g} s; "
        f"events spread over {args.customers:,} customers; "
        f"LEDGER_LOG_LEVEL={args.log_level}; "
        f"{background:.2f} cores busy before the run"
    )
    print()
    header = (
        f"{'target':<16}{'saturated ev/s':>15}{'vs bare':>9}{'vs naive':>10}"
        f"{'  at ' + format(args.rate, ',.0f') + '/s: achieved':>24}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'non-2xx':>9}"
    )
    print(header)
    print("-" * len(header))
    for target in targets:
        saturated, rate = target.results["saturate"], target.results["rate"]
        failures = sum(
            sum(run["non_2xx"].values()) + sum(run["errors"].values())
            for run in target.results.values()
        )
        print(
            f"{target.label:<16}{saturated['events_per_second']:>15,.0f}"
            f"{saturated['events_per_second'] / bare_rate:>9.1%}"
            f"{saturated['events_per_second'] / naive_rate:>10.1%}"
            f"{rate['events_per_second']:>24,.0f}{rate['p50_ms']:>8.1f}{rate['p99_ms']:>8.1f}"
            f"{failures:>9}"
        )
    print()
    cores_total = os.cpu_count() or 1
    print(
        f"CPU cores busy (of {cores_total}): server + PostgreSQL + load generator + rest "
        "(kernel, other processes), over each generator run"
    )
    for phase, title in (("saturate", "saturation"), ("rate", f"{args.rate:,.0f}/s")):
        for target in targets:
            run = target.results[phase]
            cores = run["cpu_cores"]
            print(
                f"  {title:<11}{target.label:<16}{cores['machine']:.2f} = {cores['server']:.2f}"
                f" + {cores['postgres']:.2f} + {cores['generator']:.2f} + {cores['other']:.2f}"
                f"   p50/p99 {run['p50_ms']:.1f}/{run['p99_ms']:.1f} ms"
                + (
                    f", sends late by <= {run['worst_send_lag_ms']:.1f} ms"
                    if phase == "rate"
                    else ""
                )
            )
    noisy = [
        f"{target.label} {phase} {target.results[phase]['cpu_cores']['other']:.2f}"
        for target in targets
        for phase in ("saturate", "rate")
        if target.results[phase]["cpu_cores"]["other"] > _NOISE_CORES
    ]
    if noisy:
        print(
            "  note: processes outside this benchmark took cores meanwhile "
            f"({', '.join(noisy)}); the figures beside them are depressed by it"
        )
    print()
    for target in targets:
        sent, ok = _sent(target), _ok(target)
        line = f"{target.label}: {sent:,} events sent, {ok:,} answered 2xx, failures: "
        line += _problems(target)
        if target.stored is not None:
            verdict = "exactly the events sent" if target.stored == sent else "MISMATCH"
            line += f"; table holds {target.stored:,} rows ({verdict})"
        print(line)
    print()
    ratio = ledger.results["saturate"]["events_per_second"] / naive_rate
    p99 = ledger.results["rate"]["p99_ms"]
    print(
        f"target: saturated >= 100% of naive durable: {ratio:.1%} "
        f"({'met' if ratio >= 1 else f'missed by {1 - ratio:.1%} of naive'})"
    )
    print(
        f"target: p99 < {P99_TARGET_MS:.0f} ms at {args.rate:,.0f}/s offered: {p99:.1f} ms "
        f"({'met' if p99 < P99_TARGET_MS else f'missed by {p99 - P99_TARGET_MS:.1f} ms'})"
    )
    print(f"whole run {elapsed:.0f} s")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured phase")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered events/s")
    parser.add_argument("--connections", type=int, default=64, help="at saturation")
    parser.add_argument(
        "--customers", type=int, default=10_000, help="events spread over this many customers"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--log-level", default="warning", help="stripe-ledger's LEDGER_LOG_LEVEL")
    parser.add_argument("--keep-logs", type=Path, help="copy the servers' logs here")
    args = parser.parse_args()
    started = time.monotonic()
    busy_before = _machine_busy()
    time.sleep(2.0)
    background = (_machine_busy() - busy_before) / 2.0
    targets = [
        Target("bare", "bare Starlette", None),
        Target("naive", "naive durable", NAIVE_TABLE),
        Target("ledger", "stripe-ledger", "ledger_events"),
    ]
    run = PostgresRun()
    run.create()
    try:
        asyncio.run(create_naive_table(run.url))
        with tempfile.TemporaryDirectory() as folder:
            for target in targets:
                measure(target, run.url, args, Path(folder))
            if args.keep_logs is not None:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in Path(folder).glob("*.log"):
                    (args.keep_logs / log.name).write_bytes(log.read_bytes())
    finally:
        run.drop()
    report(targets, args, background, time.monotonic() - started)


if __name__ == "__main__":
    main()
