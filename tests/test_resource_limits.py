"""An unauthenticated client must not hurt the webhook path: every header, body and
connection is bounded in size and time, and stopping `serve` is bounded too.

The `slow` tests run a real `stripe-ledger serve` and attack it from another process
(tests/support/attacks.py) while a well-behaved sender delivers signed events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Message, Scope

from cli.serving import connection_cap
from tests.conftest import make_settings
from tests.support.attacks import (
    UNFINISHED_BODIES,
    attacking,
    well_behaved_sender,
)
from tests.support.databases import TestDatabase
from tests.support.process_tree import (
    open_files_limits,
    processes_in_session,
    rss_bytes,
    wait_until_rss_settles,
)
from tests.support.processes import ServerProcess, environment, free_port, start_server
from tests.support.reliability import stored_event_ids
from tests.support.signing import SECRET, encode, envelope, signature_header, signed
from tests.support.stripe_fixtures import resource as stripe_resource
from webhooks.app import create_app
from webhooks.verify import (
    MAX_SIGNATURE_ENTRIES,
    MAX_SIGNATURE_HEADER_BYTES,
    BadSignature,
    verify_signature,
)

# The soft limit most systems start a service with, at which 1,100 idle sockets
# exhausted the server's descriptors.
DEFAULT_SOFT_LIMIT = 1024


def signed_event_body() -> bytes:
    return encode(envelope(stripe_resource("customer"), "customer.updated"))


# --- Stripe-Signature: bounded before it is parsed -------------------------------------


def test_a_signature_header_longer_than_the_cap_is_refused_though_it_holds_a_valid_v1() -> None:
    body = signed_event_body()
    header = signature_header(body) + ",v0=" + "0" * MAX_SIGNATURE_HEADER_BYTES
    with pytest.raises(BadSignature, match="longer than 8192 bytes"):
        verify_signature(body, header, [SECRET], 300)


def test_a_signature_header_with_too_many_entries_is_refused_though_it_holds_a_valid_v1() -> None:
    body = signed_event_body()
    header = signature_header(body) + ",v1=00" * MAX_SIGNATURE_ENTRIES
    assert len(header) < MAX_SIGNATURE_HEADER_BYTES
    with pytest.raises(BadSignature, match="more than 32 entries"):
        verify_signature(body, header, [SECRET], 300)


def test_a_signature_header_during_a_rotation_still_verifies() -> None:
    body = signed_event_body()
    header = signature_header(body) + ",v1=" + "0" * 64 + ",v1=" + "1" * 64
    verify_signature(body, header, [SECRET], 300)


# --- A client leaving mid-body: one line, no traceback ----------------------------------


async def test_a_client_leaving_mid_body_is_logged_in_one_line_without_a_traceback(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    app = create_app(make_settings(database))
    messages: Iterator[Message] = iter(
        [
            {"type": "http.request", "body": b'{"id": "evt_', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> Message:
        return next(messages)

    async def send(_: Message) -> None:
        pass

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/stripe",
        "raw_path": b"/webhooks/stripe",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"ledger.test"), (b"content-length", b"2000")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    async with app.router.lifespan_context(app):
        scope["app"] = app
        with structlog.testing.capture_logs() as logs:
            await app(scope, receive, send)
    assert [line["event"] for line in logs] == ["webhook_abandoned"]
    assert logs[0]["received_bytes"] == len(b'{"id": "evt_')
    assert "exc_info" not in logs[0] and "exception" not in logs[0]


# --- The connection cap follows the descriptors -----------------------------------------


def test_the_connection_cap_stays_below_the_open_files_limit(database: TestDatabase) -> None:
    settings = make_settings(database, LEDGER_MAX_CONNECTIONS=5000)
    assert connection_cap(settings, 20000) == 5000
    assert connection_cap(settings, 1024) == 1024 - 128


# --- Against a real server --------------------------------------------------------------


@contextlib.contextmanager
def soft_open_files_limit(soft: int) -> Iterator[None]:
    """This process's soft limit lowered while a child is started (the child inherits it)."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, before[1]), before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


@contextlib.contextmanager
def serve_as_a_service(
    database: TestDatabase, cwd: Path, *extra: str, **settings: str
) -> Iterator[ServerProcess]:
    """`serve` started at the default soft limit on open files, as systemd or a shell
    would start it, and stopped (its whole session) on the way out."""
    with soft_open_files_limit(DEFAULT_SOFT_LIMIT):
        server = start_server(environment(database, **settings), cwd, *extra)
    try:
        yield server
    finally:
        server.stop()


def port_of(server: ServerProcess) -> int:
    return int(server.base.rsplit(":", 1)[1])


def raw_request(port: int, data: bytes, wait: float) -> bytes:
    """Send `data`, then read whatever is answered until the server closes (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


@pytest.mark.slow
def test_serve_raises_its_open_files_limit_to_the_hard_limit(
    database: TestDatabase, tmp_path: Path
) -> None:
    with serve_as_a_service(database, tmp_path) as server:
        soft, hard = open_files_limits(server.process.pid)
    assert soft == hard > DEFAULT_SOFT_LIMIT


@pytest.mark.slow
def test_a_connection_that_sends_nothing_is_answered_408_and_closed(
    database: TestDatabase, tmp_path: Path
) -> None:
    with serve_as_a_service(database, tmp_path, LEDGER_HEADER_TIMEOUT_SECONDS="1") as server:
        answer = raw_request(port_of(server), b"", wait=30)
    assert answer.startswith(b"HTTP/1.1 408 ")


@pytest.mark.slow
def test_headers_sent_too_slowly_are_answered_408_and_closed(
    database: TestDatabase, tmp_path: Path
) -> None:
    with serve_as_a_service(database, tmp_path, LEDGER_HEADER_TIMEOUT_SECONDS="1") as server:
        answer = raw_request(port_of(server), b"POST /webhooks/stripe HTTP/1.1\r\nHost: x", 30)
    assert answer.startswith(b"HTTP/1.1 408 ")


@pytest.mark.slow
def test_headers_over_the_limit_are_answered_431_without_being_read_whole(
    database: TestDatabase, tmp_path: Path
) -> None:
    head = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,"
    huge = head + b"v1=" + b"0" * 62 + b"," * 1_000_000  # 66 MB of header, never ended
    with serve_as_a_service(database, tmp_path) as server:
        answer = raw_request(port_of(server), huge, wait=30)
        assert httpx.get(f"{server.base}/healthz").status_code == 200
    assert answer.startswith(b"HTTP/1.1 431 ")


@pytest.mark.slow
def test_a_body_that_never_finishes_is_answered_408_and_closed(
    database: TestDatabase, tmp_path: Path
) -> None:
    request = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"
    with serve_as_a_service(database, tmp_path, LEDGER_BODY_TIMEOUT_SECONDS="1") as server:
        answer = raw_request(port_of(server), request, wait=30)
    assert answer.startswith(b"HTTP/1.1 408 ")


@pytest.mark.slow
def test_past_the_connection_cap_a_delivery_is_answered_503_not_dropped(
    database: TestDatabase, tmp_path: Path
) -> None:
    with serve_as_a_service(database, tmp_path, LEDGER_MAX_CONNECTIONS="16") as server:
        idle = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(16)]
        try:
            body = signed_event_body()
            response = httpx.post(
                f"{server.base}/webhooks/stripe", content=body, headers=signed(body)
            )
        finally:
            for sock in idle:
                sock.close()
    assert response.status_code == 503


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["idle", "unfinished_bodies", "huge_signature", "slow_headers"])
async def test_signed_deliveries_are_answered_2xx_within_a_second_under_attack(
    database: TestDatabase, engine: AsyncEngine, tmp_path: Path, attack: str
) -> None:
    with (
        serve_as_a_service(database, tmp_path) as server,
        attacking(attack, port_of(server), seconds=20),
    ):
        # Measured once the server has taken in what the attack sends (300 MB of bodies
        # take it about a second here), while the attack holds.
        await asyncio.to_thread(wait_until_rss_settles, server.process.pid)
        deliveries = await well_behaved_sender(server.base, count=100, every=0.05)
    failed = [status for status in deliveries.statuses if status != 200]
    print(f"{attack} on {database.engine}: p99 {deliveries.p99() * 1000:.0f} ms")
    assert failed == []
    assert deliveries.p99() < 1.0
    assert set(deliveries.event_ids) <= set(await stored_event_ids(engine))


@pytest.mark.slow
async def test_unfinished_bodies_are_cut_and_their_memory_released(
    database: TestDatabase, tmp_path: Path
) -> None:
    with serve_as_a_service(database, tmp_path, LEDGER_BODY_TIMEOUT_SECONDS="3") as server:
        pid = server.process.pid
        await well_behaved_sender(server.base, count=20)  # warmed up
        before = await asyncio.to_thread(wait_until_rss_settles, pid)
        with attacking("unfinished_bodies", port_of(server), seconds=20) as attacker:
            ended = asyncio.create_task(asyncio.to_thread(attacker.seen))  # bodies were cut
            held = 0
            while not ended.done():
                held = max(held, rss_bytes(pid))
                await asyncio.sleep(0.1)
            seen = await ended
        await asyncio.sleep(1.5)  # memory is handed back a second after it is freed
        after = await asyncio.to_thread(wait_until_rss_settles, pid)
    print(f"RSS {before >> 20} MiB, {held >> 20} MiB held, {after >> 20} MiB after")
    assert seen == {"408": UNFINISHED_BODIES}
    assert held - before > 100 << 20  # the attack did take memory...
    assert after - before < 20 << 20  # ...and it was given back


# --- Stopping serve ---------------------------------------------------------------------


def half_sent_request(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    return sock


def wait_until_gone(session: int, within: float) -> list[int]:
    """Bounded wait for every process of `session` to end; those still running."""
    deadline = time.monotonic() + within
    while (left := processes_in_session(session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.slow
def test_sigterm_with_a_half_sent_request_open_stops_serve_within_the_grace(
    database: TestDatabase, tmp_path: Path
) -> None:
    settings = {"LEDGER_BODY_TIMEOUT_SECONDS": "600", "LEDGER_SHUTDOWN_GRACE_SECONDS": "3"}
    with serve_as_a_service(database, tmp_path, **settings) as server:
        client = half_sent_request(port_of(server))
        time.sleep(0.5)  # the request is being read
        os.kill(server.process.pid, signal.SIGTERM)
        left = wait_until_gone(server.process.pid, within=30)
        client.close()
    assert left == []


@pytest.mark.slow
async def test_sigterm_under_load_stops_every_worker_and_keeps_every_acknowledged_event(
    database: TestDatabase, engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = {"LEDGER_BODY_TIMEOUT_SECONDS": "600", "LEDGER_SHUTDOWN_GRACE_SECONDS": "3"}
    with serve_as_a_service(database, tmp_path, "--workers", "2", **settings) as server:
        assert len(processes_in_session(server.process.pid)) >= 3  # supervisor + 2 workers
        load = asyncio.create_task(well_behaved_sender(server.base, count=400, every=0.005))
        await asyncio.sleep(1.0)
        client = half_sent_request(port_of(server))
        await asyncio.sleep(0.5)
        os.kill(server.process.pid, signal.SIGTERM)  # the supervisor, as systemd would
        left = await asyncio.to_thread(wait_until_gone, server.process.pid, 30)
        deliveries = await load
        client.close()
    acknowledged = [
        event_id
        for event_id, status in zip(deliveries.event_ids, deliveries.statuses, strict=True)
        if status == 200
    ]
    assert left == []
    assert acknowledged  # the load was served before the signal
    assert set(acknowledged) <= set(await stored_event_ids(engine))


@pytest.mark.slow
def test_workers_stop_when_their_supervisor_is_killed(
    database: TestDatabase, tmp_path: Path
) -> None:
    with serve_as_a_service(database, tmp_path, "--workers", "2") as server:
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=30)
        left = wait_until_gone(server.process.pid, within=30)
    assert left == []


_HANGING_SHUTDOWN = """
import asyncio, sys
import uvicorn
from cli.shutdown import ShutdownDeadline

async def app(scope, receive, send):
    while True:  # a lifespan whose shutdown never ends (a commit the database never answers)
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await asyncio.sleep(3600)

uvicorn.run(ShutdownDeadline(app, 1.0), host="127.0.0.1", port=int(sys.argv[1]), log_config=None)
"""


@pytest.mark.slow
def test_a_shutdown_that_never_ends_is_cut_at_its_deadline(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _HANGING_SHUTDOWN, str(port)], cwd=Path(__file__).parents[1]
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 1
