"""Webhook ingest on PostgreSQL: stripe-ledger against the peer and a naive endpoint, same run.

    .venv/bin/python -m bench.ingest [--rounds 3] [--seconds 10] [--rate 1000] [--connections 32]

The targets, each on a fresh PostgreSQL database of its own, one after the other, in
--rounds alternating rounds (naive, peer, serve, serve --workers 2, naive, ...):
- naive durable: the signature verified with `stripe`, one INSERT of the raw body and one
  commit per request through asyncpg, under uvicorn with 1 worker (bench/ingest_baselines.py);
- peer: @supabase/stripe-sync-engine 0.48.5 (npm) under node, node:http +
  `StripeSync.processWebhook`, a pool of 16 (bench/peer_sync_engine.cjs). npm installs it
  into ~/.cache/stripe-ledger-bench/peer (or $STRIPE_LEDGER_BENCH_CACHE) the first time;
  nothing of it is in the repository;
- stripe-ledger: `stripe-ledger serve` (1 worker) and `serve --workers 2` as a user runs them,
  the projection worker inside each HTTP worker; LEDGER_LOG_LEVEL=warning (--log-level);
- with --targets: also `bare` (a Starlette endpoint that reads the body: the HTTP ceiling)
  and `append-only` / `append-only-2` (stripe-ledger's app without the projection worker,
  1 and 2 workers: what the append path alone reaches).

Every body is a distinct signed 3 KB charge.succeeded event (bench/load.py --body
charge_succeeded) for one of --customers customers. Each target gets a 1 s warm-up, then the
fixed offered rate (open loop, bench/load.py `rate`): achieved events/s and p50/p99 latency;
then saturation (closed loop on --connections connections): events/s in a window after 1 s
of ramp-up. The load generator is a process of its own on the same cores; the CPU each side
used is printed, with what other processes took meanwhile (the machine is shared).
Afterwards each target's table (ledger_events, the naive table, the peer's stripe.charges)
must hold exactly the events sent. The figures are medians over the rounds.
Targets (issue 16): stripe-ledger saturated >= 2x the peer and >= 1.66x naive durable, and
p99 under 50 ms at 1,000 events/s offered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
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
PEER_TARGET = 2.0  # saturated, x the peer
NAIVE_TARGET = 1.66  # saturated, x naive durable
PEER_PACKAGE = "@supabase/stripe-sync-engine@0.48.5"
PEER_SCRIPT = ROOT / "bench" / "peer_sync_engine.cjs"
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
    workers: int | None = None  # None: serving()'s argument
    rounds: list[Target] = field(default_factory=list)  # bench.ingest: one Target per round


_FACTORIES = {
    "bare": "bare_app",
    "naive": "naive_app",
    "append-only": "ledger_without_projections_app",
}


def _targets() -> dict[str, Target]:
    return {
        "bare": Target("bare", "bare Starlette", None, workers=1),
        "naive": Target("naive", "naive durable", NAIVE_TABLE, workers=1),
        "peer": Target("peer", "stripe-sync-engine", "stripe.charges"),
        "ledger": Target("ledger", "serve", "ledger_events", workers=1),
        "ledger-2": Target("ledger", "serve --workers 2", "ledger_events", workers=2),
        "append-only": Target("append-only", "append only", "ledger_events", workers=1),
        "append-only-2": Target("append-only", "append only x2", "ledger_events", workers=2),
    }


def peer_modules() -> Path:
    """The peer's node_modules, installed by npm into a cache folder outside the repository
    the first time (the same version every time: PEER_PACKAGE)."""
    cache = Path(
        os.environ.get("STRIPE_LEDGER_BENCH_CACHE", Path.home() / ".cache" / "stripe-ledger-bench")
    )
    folder = cache / "peer"
    name, _, version = PEER_PACKAGE.rpartition("@")
    manifest = folder / "node_modules" / name / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise SystemExit("bench.ingest needs node and npm for the peer (or leave it out)")
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", PEER_PACKAGE],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return folder / "node_modules"


def _server_command(target: Target, port: int, workers: int) -> list[str]:
    if target.key == "ledger":
        return [str(BIN / "stripe-ledger"), "serve", "--workers", str(workers), "--port", str(port)]
    if target.key == "peer":
        return [shutil.which("node") or "node", str(PEER_SCRIPT)]
    factory = _FACTORIES[target.key]
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
        "PEER_DATABASE_URL": database_url,
        "PORT": str(port),
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "LEDGER_LOG_LEVEL": log_level,
    }
    if target.key == "peer":
        env["PEER_MODULES"] = str(peer_modules())
    workers = target.workers or workers
    log_path = folder / f"{target.key}-{workers}.log"
    with log_path.open("a") as log:  # a file, not a pipe: a chatty server never blocks
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
            "--body",
            "charge_succeeded",
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
    if target.key == "peer":
        _check_no_outbound(folder / f"peer-{target.workers or args.workers}.log")


def _check_no_outbound(log: Path) -> None:
    """The peer counts the HTTP(S) requests it tried (each refused) and prints it at exit."""
    counts = [
        json.loads(line)["outbound_requests"]
        for line in log.read_text().splitlines()
        if line.startswith('{"outbound_requests"')
    ]
    if not counts or counts[-1] != 0:
        raise RuntimeError(f"the peer tried to reach the network: {counts} ({log})")


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


def _median(target: Target, phase: str, figure: str) -> float:
    return statistics.median(float(r.results[phase][figure]) for r in target.rounds)


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}x" if base else "-"


def report(
    targets: list[Target], args: argparse.Namespace, background: float, elapsed: float
) -> None:
    by_key = {t.label: t for t in targets}
    peer = next((t for t in targets if t.key == "peer"), None)
    naive = next((t for t in targets if t.key == "naive"), None)
    peer_rate = _median(peer, "saturate", "events_per_second") if peer else None
    naive_rate = _median(naive, "saturate", "events_per_second") if naive else None
    print(
        f"bench.ingest {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} cores, "
        f"PostgreSQL; {args.rounds} alternating rounds, medians; saturation "
        f"{args.connections} connections x {args.seconds:g} s; open loop {args.rate:,.0f}/s x "
        f"{args.seconds:g} s; distinct signed charge.succeeded bodies spread over "
        f"{args.customers:,} customers; LEDGER_LOG_LEVEL={args.log_level}; "
        f"{background:.2f} cores busy before the run"
    )
    print()
    header = (
        f"{'target':<20}{'saturated ev/s':>15}{'vs peer':>9}{'vs naive':>10}"
        f"{'rounds':>22}{'  at ' + format(args.rate, ',.0f') + '/s p50 ms':>20}{'p99 ms':>8}"
        f"{'non-2xx':>9}"
    )
    print(header)
    print("-" * len(header))
    for target in targets:
        rate = _median(target, "saturate", "events_per_second")
        rounds = "/".join(
            f"{r.results['saturate']['events_per_second']:,.0f}" for r in target.rounds
        )
        failures = sum(
            sum(run["non_2xx"].values()) + sum(run["errors"].values())
            for r in target.rounds
            for run in r.results.values()
        )
        print(
            f"{target.label:<20}{rate:>15,.0f}{_ratio(rate, peer_rate):>9}"
            f"{_ratio(rate, naive_rate):>10}{rounds:>22}"
            f"{_median(target, 'rate', 'p50_ms'):>20.1f}{_median(target, 'rate', 'p99_ms'):>8.1f}"
            f"{failures:>9}"
        )
    print()
    print(
        f"CPU cores busy (of {os.cpu_count() or 1}): server + PostgreSQL + load generator + rest "
        "(kernel, other processes), each round"
    )
    noisy: list[str] = []
    for phase, title in (("saturate", "saturation"), ("rate", f"{args.rate:,.0f}/s")):
        for target in targets:
            for n, r in enumerate(target.rounds, 1):
                run = r.results[phase]
                cores = run["cpu_cores"]
                print(
                    f"  {title:<11}{target.label:<20}#{n} {cores['machine']:.2f} = "
                    f"{cores['server']:.2f} + {cores['postgres']:.2f} + {cores['generator']:.2f}"
                    f" + {cores['other']:.2f}   {run['events_per_second']:,.0f} ev/s, "
                    f"p50/p99 {run['p50_ms']:.1f}/{run['p99_ms']:.1f} ms"
                    + (
                        f", sends late <= {run['worst_send_lag_ms']:.1f} ms"
                        if phase == "rate"
                        else ""
                    )
                )
                if cores["other"] > _NOISE_CORES:
                    noisy.append(f"{target.label} #{n} {phase} {cores['other']:.2f}")
    if noisy:
        print(
            "  note: processes outside this benchmark took cores meanwhile "
            f"({', '.join(noisy)}); the figures beside them are depressed by it"
        )
    print()
    for target in targets:
        for n, r in enumerate(target.rounds, 1):
            sent, ok = _sent(r), _ok(r)
            line = f"{target.label} #{n}: {sent:,} events sent, {ok:,} answered 2xx, failures: "
            line += _problems(r)
            if r.stored is not None:
                verdict = "exactly the events sent" if r.stored == sent else "MISMATCH"
                line += f"; {r.table} holds {r.stored:,} rows ({verdict})"
            print(line)
    if peer is not None:
        print("stripe-sync-engine: no outbound request tried in any round")
    print()
    for label in ("serve", "serve --workers 2"):
        ledger = by_key.get(label)
        if ledger is None:
            continue
        rate = _median(ledger, "saturate", "events_per_second")
        for base, factor, name in (
            (peer_rate, PEER_TARGET, "the peer"),
            (naive_rate, NAIVE_TARGET, "naive"),
        ):
            if base:
                met = "met" if rate >= factor * base else "missed"
                print(
                    f"target: {label} saturated >= {factor:g}x {name}: {rate / base:.2f}x ({met})"
                )
        p99 = _median(ledger, "rate", "p99_ms")
        verdict = "met" if p99 < P99_TARGET_MS else f"missed by {p99 - P99_TARGET_MS:.1f} ms"
        print(
            f"target: {label} p99 < {P99_TARGET_MS:.0f} ms at {args.rate:,.0f}/s offered: "
            f"{p99:.1f} ms ({verdict})"
        )
    print(f"whole run {elapsed:.0f} s")
    sys.stdout.flush()


def _round(target: Target, args: argparse.Namespace, folder: Path) -> Target:
    """One measurement of `target` on a fresh database of its own, dropped after."""
    one = Target(target.key, target.label, target.table, workers=target.workers)
    run = PostgresRun()
    run.create()
    try:
        if one.key == "naive":
            asyncio.run(create_naive_table(run.url))
        measure(one, run.url, args, folder)
    finally:
        run.drop()
    return one


def main() -> None:
    known = _targets()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured phase")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered events/s")
    parser.add_argument("--connections", type=int, default=32, help="at saturation")
    parser.add_argument(
        "--customers", type=int, default=10_000, help="events spread over this many customers"
    )
    parser.add_argument(
        "--targets",
        default="naive,peer,ledger,ledger-2",
        help=f"comma-separated, in order, of: {', '.join(known)}",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="bare's uvicorn workers"
    )
    parser.add_argument("--log-level", default="warning", help="stripe-ledger's LEDGER_LOG_LEVEL")
    parser.add_argument("--keep-logs", type=Path, help="copy the servers' logs here")
    args = parser.parse_args()
    targets = [known[name] for name in args.targets.split(",")]
    if any(t.key == "peer" for t in targets):
        peer_modules()  # installed before anything is timed
    started = time.monotonic()
    busy_before = _machine_busy()
    time.sleep(2.0)
    background = (_machine_busy() - busy_before) / 2.0
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for target in targets:
                target.rounds.append(_round(target, args, Path(folder)))
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in Path(folder).glob("*.log"):
                (args.keep_logs / log.name).write_bytes(log.read_bytes())
    report(targets, args, background, time.monotonic() - started)


if __name__ == "__main__":
    main()
