"""Running the installed `stripe-ledger` command as a user would, from another directory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.databases import TestDatabase
from tests.support.signing import SECRET

COMMAND = str(Path(sys.executable).parent / "stripe-ledger")


def environment(database: TestDatabase, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    env.update(database.environment())
    env["STRIPE_WEBHOOK_SECRET"] = SECRET
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMMAND, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_healthy(
    process: subprocess.Popen[bytes], base: str, log_path: Path, label: str
) -> None:
    """Poll `base`/healthz until it answers 200; raise with the log if the process dies."""
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{label} exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label} did not become healthy in 60 s")
        time.sleep(0.1)


@contextmanager
def serving(env: dict[str, str], cwd: Path, *extra: str) -> Iterator[str]:
    """`stripe-ledger serve` in a child process; yields its base URL once it is healthy."""
    with server_process(env, cwd, *extra) as server:
        yield server.base


@dataclass
class ServerProcess:
    """A `stripe-ledger serve` in a session of its own, so it can be killed whole (uvicorn's
    supervisor with its workers) without touching anything else."""

    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown code runs."""
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def start_server(
    env: dict[str, str], cwd: Path, *extra: str, port: int | None = None, log_name: str = "serve"
) -> ServerProcess:
    """`stripe-ledger serve` on `port` (a free one by default), once it is healthy. Its
    output is appended to `cwd`/`log_name`.log, so a restart keeps the earlier lines."""
    port = port or free_port()
    return start_command(
        [COMMAND, "serve", "--port", str(port), *extra], env, cwd, port, log_name=log_name
    )


def start_command(
    argv: list[str], env: dict[str, str], cwd: Path, port: int, *, log_name: str
) -> ServerProcess:
    """Any command that serves on `port` (an installed package's `serve`, `scripts/run`),
    in a session of its own, once it is healthy; output appended to `cwd`/`log_name`.log."""
    log_path = cwd / f"{log_name}.log"
    with log_path.open("a") as log:
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until_healthy(process, server.base, log_path, log_name)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def server_process(
    env: dict[str, str], cwd: Path, *extra: str, log_name: str = "serve"
) -> Iterator[ServerProcess]:
    """start_server, stopped on the way out whatever happened to it meanwhile."""
    server = start_server(env, cwd, *extra, log_name=log_name)
    try:
        yield server
    finally:
        server.stop()
