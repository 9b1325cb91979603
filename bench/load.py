"""The load generator of `bench.ingest`, run in a process of its own: signed Stripe events
POSTed over HTTP/1.1 keep-alive connections to 127.0.0.1, then one JSON document on stdout.

    python -m bench.load --port P saturate --connections 64 --seconds 10 [--warmup 1]
    python -m bench.load --port P rate --rate 1000 --seconds 10

`saturate` is closed-loop: each connection sends its next event as soon as the previous one
is answered. `rate` is open-loop: event i is due at start + i/rate and is sent then, whatever
the earlier ones are doing (on an idle connection, or a new one up to --max-connections);
its latency runs from when it was due, so a server that falls behind is not flattered by a
generator that waits for it.

With --events-file, the bodies are the events of a JSONL file (e.g. `stripe-ledger
simulate --jsonl`), in its order, each sent once. Otherwise every body is
`event_2020("invoice_paid")` with ids of its own (event, invoice and line, in
the shape `fresh_id` gives) for one of --customers customers, signed with the current
timestamp just before it is written (see `Events`); with --body charge_succeeded,
`event_2020("charge_succeeded")` likewise (`ChargeEvents`, what bench.ingest sends).
The client is a small asyncio protocol rather than httpx: the machine has 2 cores,
shared with the server under test and PostgreSQL, and httpx's per-request cost would
take a large part of them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import random
import resource
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

import uvloop

from tests.support.signing import SECRET, encode, signed
from tests.support.stripe_fixtures import event_2020

_TIMEOUT_SECONDS = 30.0
# Not loop.time(): uvloop's is libuv's clock, cached per loop iteration at 1 ms resolution.
now = time.perf_counter


class Events:
    """Distinct invoice.paid deliveries, each signed when it is taken.

    Each has a fresh event id, invoice id and invoice line id, and belongs to one of
    `customers` customers (with that customer's subscription), picked at random: a ledger
    re-derives a customer from all of that customer's events, so one customer receiving
    every event would measure a pathological history rather than an account's traffic.
    With customers=1 every event is the fixture's own customer.
    """

    def __init__(self, port: int, path: str, customers: int) -> None:
        event = event_2020("invoice_paid")
        invoice = event["data"]["object"]
        self._fixed = {  # the fixture's ids, each replaced per event below
            "event": event["id"],
            "invoice": invoice["id"],
            "line": invoice["lines"]["data"][0]["id"],
            "customer": invoice["customer"],
            "subscription": invoice["subscription"],
            "item": invoice["lines"]["data"][0]["subscription_item"],
        }
        self._template = encode(event).decode()
        for name, value in self._fixed.items():
            if name != "subscription" and self._template.count(f'"{value}"') != 1:
                raise RuntimeError(f"the fixture's {name} id must occur exactly once")
        self._customers = customers
        self._request_line = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"

    def body(self) -> bytes:
        fresh = uuid.uuid4().hex
        text = self._template.replace(self._fixed["event"], f"evt_{fresh[:24]}")
        text = text.replace(self._fixed["invoice"], f"in_{fresh[8:32]}")
        text = text.replace(self._fixed["line"], f"il_{fresh[4:28]}")
        if self._customers > 1:
            n = random.randrange(self._customers)
            text = text.replace(self._fixed["customer"], f"cus_bench{n:09d}")
            text = text.replace(self._fixed["subscription"], f"sub_bench{n:09d}")
            text = text.replace(self._fixed["item"], f"si_bench{n:010d}")
        return text.encode()

    def next(self) -> bytes:
        body = self.body()
        headers = signed(body, SECRET)  # Stripe-Signature with time.time(), Content-Type
        head = self._request_line + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


class ChargeEvents(Events):
    """Distinct charge.succeeded deliveries (about 3 KB), each signed when it is taken: a
    fresh event id and charge id, for one of `customers` customers picked at random."""

    def __init__(self, port: int, path: str, customers: int) -> None:
        event = event_2020("charge_succeeded")
        charge = event["data"]["object"]
        self._fixed = {"event": event["id"], "charge": charge["id"], "customer": charge["customer"]}
        self._template = encode(event).decode()
        self._customers = customers
        self._request_line = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"

    def body(self) -> bytes:
        fresh = uuid.uuid4().hex
        text = self._template.replace(self._fixed["event"], f"evt_{fresh[:24]}")
        text = text.replace(self._fixed["charge"], f"ch_{fresh[8:32]}")
        if self._customers > 1:
            n = random.randrange(self._customers)
            text = text.replace(self._fixed["customer"], f"cus_bench{n:09d}")
        return text.encode()


class RecordedEvents(Events):
    """The events of a JSONL file, in order, each signed when it is taken."""

    def __init__(self, port: int, path: str, source: str) -> None:
        self._request_line = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        with open(source, "rb") as lines:
            # Stripe's own formatting, as the server would receive it.
            self._bodies = collections.deque(encode(json.loads(line)) for line in lines)

    def body(self) -> bytes:
        if not self._bodies:
            raise RuntimeError("the events file is used up: give a longer one")
        return self._bodies.popleft()


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        length: int | None = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:  # every app measured here answers with a Content-Length
            self._fail(ConnectionError("a response without Content-Length"))
            self.close()
            return
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        del self._buffer[:total]
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
        if waiter is not None and not waiter.done():
            waiter.set_result(int(lines[0].split(" ", 2)[1]))

    def request(self, data: bytes) -> asyncio.Future[int]:
        """The response's status code, once the whole response has been read."""
        assert self._transport is not None and self._waiter is None
        self._waiter = self._loop.create_future()
        self._timer = self._loop.call_later(_TIMEOUT_SECONDS, self._timed_out)
        self._transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _timed_out(self) -> None:
        self._fail(TimeoutError(f"no response in {_TIMEOUT_SECONDS:.0f} s"))
        self.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


async def connect(port: int) -> Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(Connection, "127.0.0.1", port)
    return protocol


class Pool:
    """Idle connections reused; new ones opened up to a limit; beyond it, a wait."""

    def __init__(self, port: int, limit: int) -> None:
        self._port = port
        self._limit = limit
        self._idle: list[Connection] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.most_open = 0

    async def acquire(self) -> Connection:
        while True:
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed:
                    return connection
                self._open -= 1
            if self._open < self._limit:
                self._open += 1
                self.most_open = max(self.most_open, self._open)
                try:
                    return await connect(self._port)
                except OSError:
                    self._open -= 1
                    raise
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def release(self, connection: Connection) -> None:
        if connection.closed:
            self._open -= 1
        else:
            self._idle.append(connection)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def close(self) -> None:
        for connection in self._idle:
            connection.close()


@dataclass
class Tally:
    """What happened to every request written, and the latencies of those in the window."""

    sent: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    in_window: int = 0
    last_done: float = 0.0

    def answered(self, status: int, due: float, done: float, counted: bool) -> None:
        self.statuses[status] += 1
        self.last_done = max(self.last_done, done)
        if counted:
            self.in_window += 1
            self.latencies.append(done - due)

    def failed(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] += 1

    def document(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        ok = sum(n for status, n in self.statuses.items() if 200 <= status < 300)
        return {
            "sent": self.sent,
            "answered": sum(self.statuses.values()),
            "ok": ok,
            "non_2xx": {
                str(status): n
                for status, n in sorted(self.statuses.items())
                if n and not 200 <= status < 300
            },
            "errors": dict(self.errors),
            "p50_ms": _percentile(ordered, 0.50) * 1000,
            "p99_ms": _percentile(ordered, 0.99) * 1000,
            "max_ms": (ordered[-1] if ordered else float("nan")) * 1000,
        }


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))  # nearest rank
    return ordered[index]


async def saturate(
    events: Events, port: int, connections: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """Closed loop on `connections` connections; the rate counts answers in the window
    [warmup, warmup + seconds], and every request is answered before returning."""
    tally = Tally()
    opened = [await connect(port) for _ in range(connections)]
    start = now()
    window_from, window_to = start + warmup, start + warmup + seconds

    async def client(connection: Connection) -> None:
        while now() < window_to:
            if connection.closed:
                try:
                    connection = await connect(port)
                except OSError as exc:
                    tally.failed(exc)
                    await asyncio.sleep(0.05)
                    continue
            data = events.next()
            sent_at = now()
            tally.sent += 1
            try:
                status = await connection.request(data)
            except (OSError, TimeoutError) as exc:
                tally.failed(exc)
                continue
            done = now()
            tally.answered(status, sent_at, done, window_from <= done <= window_to)
        connection.close()

    await asyncio.gather(*(client(connection) for connection in opened))
    document = tally.document()
    document.update(
        mode="saturate",
        connections=connections,
        window_seconds=seconds,
        events_per_second=tally.in_window / seconds,
        wall_seconds=now() - start,
    )
    return document


async def fixed_rate(
    events: Events, port: int, rate: float, seconds: float, max_connections: int
) -> dict[str, Any]:
    """Open loop: `rate` x `seconds` events, each sent when due; latency from when due."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    pool = Pool(port, max_connections)
    warm = [await pool.acquire() for _ in range(min(32, max_connections))]
    for connection in warm:
        pool.release(connection)
    total = round(rate * seconds)
    start = now() + 0.05
    worst_lag = 0.0
    pending: set[asyncio.Task[None]] = set()

    async def one(due: float) -> None:
        try:
            connection = await pool.acquire()
        except OSError as exc:
            tally.failed(exc)
            return
        tally.sent += 1
        try:
            status = await connection.request(events.next())
        except (OSError, TimeoutError) as exc:
            tally.failed(exc)
        else:
            tally.answered(status, due, now(), True)
        finally:
            pool.release(connection)

    for index in range(total):
        due = start + index / rate
        delay = due - now()
        if delay > 0:
            await asyncio.sleep(delay)
        worst_lag = max(worst_lag, now() - due)
        task = loop.create_task(one(due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    pool.close()
    document = tally.document()
    span = tally.last_done - start
    document.update(
        mode="rate",
        offered_per_second=rate,
        events_per_second=document["answered"] / span if span > 0 else 0.0,
        most_connections=pool.most_open,
        worst_send_lag_ms=worst_lag * 1000,
        wall_seconds=now() - start,
    )
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/webhooks/stripe")
    parser.add_argument("--customers", type=int, default=10_000, help="1: the fixture's own")
    parser.add_argument("--events-file", help="Send these JSONL events instead, in order.")
    parser.add_argument(
        "--body", choices=("invoice_paid", "charge_succeeded"), default="invoice_paid"
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    closed = modes.add_parser("saturate")
    closed.add_argument("--connections", type=int, default=64)
    closed.add_argument("--seconds", type=float, default=10.0)
    closed.add_argument("--warmup", type=float, default=1.0)
    opened = modes.add_parser("rate")
    opened.add_argument("--rate", type=float, default=1000.0)
    opened.add_argument("--seconds", type=float, default=10.0)
    opened.add_argument("--max-connections", type=int, default=256)
    args = parser.parse_args()
    cpu_before = time.process_time()
    events = (
        RecordedEvents(args.port, args.path, args.events_file)
        if args.events_file
        else (ChargeEvents if args.body == "charge_succeeded" else Events)(
            args.port, args.path, args.customers
        )
    )
    if args.mode == "saturate":
        run = saturate(events, args.port, args.connections, args.seconds, args.warmup)
    else:
        run = fixed_rate(events, args.port, args.rate, args.seconds, args.max_connections)
    document = uvloop.run(run)
    document["client_cpu_seconds"] = time.process_time() - cpu_before
    document["client_max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
