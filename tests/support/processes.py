"""Running the installed `stripe-ledger` command as a user would, from another directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    port = free_port()
    log_path = cwd / "serve.log"
    with log_path.open("w") as log:  # a file, not a pipe: a chatty server never blocks
        process = subprocess.Popen(
            [COMMAND, "serve", "--port", str(port), *extra],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, base, log_path, "serve")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
