"""Unauthenticated clients that try to starve a server, each run in a process of its own
(so its load does not slow the well-behaved sender measured beside it), and that sender.

`python -m tests.support.attacks KIND PORT SECONDS` holds the attack for at most SECONDS,
printing `ready` once it is in place and, at the end, a JSON line of what it saw. Only
127.0.0.1; every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.signing import encode, envelope, signed
from tests.support.stripe_fixtures import resource as stripe_resource

HOST = "127.0.0.1"
IDLE_CONNECTIONS = 1100
UNFINISHED_BODIES = 300
BODY_BYTES = 1024 * 1024
SLOW_CONNECTIONS = 300
SIGNATURE_ENTRIES = 1_000_000
_ROOT = Path(__file__).resolve().parents[2]

Seen = collections.Counter[str]


def _raise_own_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _answer(reader: asyncio.StreamReader, seen: Seen, within: float) -> None:
    """Record the status the server answered (or how the connection ended)."""
    try:
        line = await asyncio.wait_for(reader.readline(), within)
    except TimeoutError:
        seen["no answer"] += 1
        return
    except OSError:
        seen["reset"] += 1
        return
    seen[line.split(b" ")[1].decode() if line.startswith(b"HTTP/") else "closed"] += 1


async def idle(port: int, seconds: float, seen: Seen) -> None:
    """Connections that never send a byte, opened again whenever the server cuts one."""
    deadline = time.monotonic() + seconds

    async def one(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        reader, writer = connection  # the writer is kept: one collected closes its socket
        while True:
            await _answer(reader, seen, max(0.1, deadline - time.monotonic()))
            writer.close()
            if time.monotonic() >= deadline:
                return
            reader, writer = await asyncio.open_connection(HOST, port)

    connections = [await asyncio.open_connection(HOST, port) for _ in range(IDLE_CONNECTIONS)]
    print("ready", flush=True)
    await asyncio.gather(*(one(connection) for connection in connections))


async def unfinished_bodies(port: int, seconds: float, seen: Seen) -> None:
    """Requests declaring a 1 MiB body that stop one byte short of it."""
    head = (
        f"POST /webhooks/stripe HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Stripe-Signature: t=1,v1=00\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
    ).encode()
    body = b"{" + b" " * (BODY_BYTES - 2)  # one byte short

    async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(head + body)
        await writer.drain()
        return reader, writer  # kept: a writer collected closes its connection

    connections = await asyncio.gather(*(one() for _ in range(UNFINISHED_BODIES)))
    print("ready", flush=True)
    await asyncio.gather(*(_answer(reader, seen, seconds) for reader, _ in connections))


async def huge_signature(port: int, seconds: float, seen: Seen) -> None:
    """Requests whose Stripe-Signature is a million `v1=` entries (66 MB), sent again
    and again until the time is up."""
    entry = b"v1=" + b"0" * 62 + b","
    head = f"POST /webhooks/stripe HTTP/1.1\r\nHost: {HOST}\r\nStripe-Signature: t=1,".encode()
    request = head + entry * SIGNATURE_ENTRIES + b"\r\nContent-Length: 2\r\n\r\n{}"
    deadline = time.monotonic() + seconds
    print("ready", flush=True)
    while time.monotonic() < deadline:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(request)
        with contextlib.suppress(OSError):
            await asyncio.wait_for(writer.drain(), max(0.1, deadline - time.monotonic()))
        await _answer(reader, seen, max(0.1, deadline - time.monotonic()))
        writer.close()


async def slow_headers(port: int, seconds: float, seen: Seen) -> None:
    """Connections sending their headers a byte every half second, reconnecting when cut."""
    deadline = time.monotonic() + seconds
    ready = asyncio.Event()

    async def one() -> None:
        while time.monotonic() < deadline:
            reader, writer = await asyncio.open_connection(HOST, port)
            ready.set()
            request = f"POST /webhooks/stripe HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ".encode()
            writer.write(request)
            try:
                while time.monotonic() < deadline and not reader.at_eof():
                    writer.write(b"a")
                    await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(reader.read(1024), 0.5)
                seen["cut" if reader.at_eof() else "held"] += 1
            except OSError:
                seen["reset"] += 1
            writer.close()

    tasks = [asyncio.create_task(one()) for _ in range(SLOW_CONNECTIONS)]
    await ready.wait()
    print("ready", flush=True)
    await asyncio.gather(*tasks)


ATTACKS: dict[str, Callable[[int, float, Seen], Awaitable[None]]] = {
    "idle": idle,
    "unfinished_bodies": unfinished_bodies,
    "huge_signature": huge_signature,
    "slow_headers": slow_headers,
}


@dataclass
class Attacker:
    process: subprocess.Popen[str]

    def seen(self) -> dict[str, int]:
        """Wait (bounded) for the attack to end; what it saw."""
        out, _ = self.process.communicate(timeout=120)
        self.process.wait()
        result: dict[str, int] = json.loads(out.splitlines()[-1])
        return result


@contextmanager
def attacking(kind: str, port: int, seconds: float) -> Iterator[Attacker]:
    """The attack running against `port`, in place before this yields."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.attacks", kind, str(port), str(seconds)],
        cwd=_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # bounded: the attacker exits after `seconds`
        if line.strip() != "ready":
            raise RuntimeError(f"the {kind} attack did not get in place: {line!r}")
        yield Attacker(process)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)  # reaps it and closes its pipe


@dataclass(frozen=True)
class Deliveries:
    statuses: list[int | str]
    seconds: list[float]
    event_ids: list[str]

    def p99(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[math.ceil(0.99 * len(ordered)) - 1]


async def well_behaved_sender(base: str, count: int = 100, every: float = 0.03) -> Deliveries:
    """`count` signed deliveries, one started every `every` seconds (as Stripe would, each
    on its own schedule): their statuses, their latencies, their event ids."""

    async def deliver(client: httpx.AsyncClient, index: int) -> tuple[int | str, float, str]:
        customer = stripe_resource("customer")
        customer["id"] = f"cus_behaved{index:05d}"
        event = envelope(customer, "customer.updated")
        body = encode(event)
        started = time.perf_counter()
        try:
            response = await client.post(
                f"{base}/webhooks/stripe", content=body, headers=signed(body)
            )
            status: int | str = response.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        return status, time.perf_counter() - started, str(event["id"])

    async with httpx.AsyncClient(timeout=10) as client:
        tasks = []
        for index in range(count):
            tasks.append(asyncio.create_task(deliver(client, index)))
            await asyncio.sleep(every)
        results = await asyncio.gather(*tasks)
    return Deliveries(
        [status for status, _, _ in results],
        [seconds for _, seconds, _ in results],
        [event_id for _, _, event_id in results],
    )


def main() -> None:
    kind, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    _raise_own_open_files_limit()
    seen: Seen = collections.Counter()

    async def bounded() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ATTACKS[kind](port, seconds, seen), seconds + 5)

    asyncio.run(bounded())
    print(json.dumps(dict(seen)), flush=True)


if __name__ == "__main__":
    main()
