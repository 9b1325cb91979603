"""Nobody gets in: whatever arrives (random bytes, near-valid events, garbled or replayed
signatures, odd paths, sizes around the limit), the endpoint never answers 5xx and never
stores a row without a valid signature over a valid event; oversized bodies are refused
before they are read whole; a captured delivery replayed later is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import time_machine
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.schema import ledger_conflicts, ledger_events
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.databases import TestDatabase, sqlite_database
from tests.support.processes import environment, server_process
from tests.support.signing import OTHER_SECRET, SECRET, encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020

LIMIT = 8192  # every fixture fits, so events padded around it are otherwise valid
TOLERANCE = 300
GOOD_PATHS = ("/webhooks/stripe", "/webhooks/stripe/default")
FIXTURES = ("invoice_paid", "customer_deleted", "refund_created", "subscription_created")


@pytest.fixture
async def client(database: TestDatabase, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(database, LEDGER_MAX_BODY_BYTES=LIMIT)) as client:
        yield client


async def rows(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        events = await conn.scalar(select(func.count()).select_from(ledger_events))
        conflicts = await conn.scalar(select(func.count()).select_from(ledger_conflicts))
    return int(events or 0), int(conflicts or 0)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    signed: bool  # an HMAC with the endpoint's secret over these bytes, within the tolerance
    intact: bool  # the body is a Stripe event as Stripe sends it, unmodified


def signature(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    """Stripe's v1 scheme over raw bytes (stripe's own helper wants text)."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


# --- bodies

# Values at the edges of what the ledger stores: lengths around its columns' widths,
# NUL characters (PostgreSQL text cannot hold them), integers past a datetime's range.
long_strings = st.builds(
    lambda prefix, n, c: prefix + c * n,
    st.sampled_from(["", "evt_", "cus_", "in_"]),
    st.sampled_from([59, 60, 61, 62, 123, 124, 125, 126, 250, 251, 252, 253, 5000]),
    st.sampled_from(["x", "é", "\x00"]),
)
edge_integers = st.sampled_from(
    [-1, 0, 2**31, 253402300799, 253402300800, 10**15, 2**62, 2**63 - 1, 2**64]
)
junk: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.builds(lambda s: "evt_" + s, st.text(max_size=20)),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
events = st.builds(lambda name: fresh_id(event_2020(name)), st.sampled_from(FIXTURES))
# What the ledger reads from an event to store and route it.
FIELDS = (
    ("id",),
    ("object",),
    ("type",),
    ("created",),
    ("livemode",),
    ("api_version",),
    ("data",),
    ("data", "object"),
    ("data", "object", "object"),
    ("data", "object", "id"),
    ("data", "object", "customer"),
)


@st.composite
def near_valid_events(draw: st.DrawFn) -> bytes:
    """A real event with one to three of the fields the ledger reads removed or replaced
    by a value at an edge."""
    document = draw(events)
    for _ in range(draw(st.integers(1, 3))):
        *parents, key = draw(st.sampled_from(FIELDS))
        target: Any = document
        for parent in parents:
            target = target.get(parent) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if draw(st.integers(0, 3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(st.one_of(long_strings, edge_integers, junk))
    return json.dumps(document, ensure_ascii=draw(st.booleans())).encode()


@st.composite
def sized_events(draw: st.DrawFn) -> bytes:
    """A valid event padded with JSON whitespace to a size around the limit."""
    body = encode(draw(events))
    size = LIMIT + draw(st.sampled_from([-2, -1, 0, 1, 2, LIMIT]))
    return body + b" " * (size - len(body))


bodies: st.SearchStrategy[tuple[bytes, bool]] = st.one_of(
    st.tuples(st.binary(max_size=400), st.just(False)),
    st.tuples(json_values.map(lambda v: json.dumps(v).encode()), st.just(False)),
    st.tuples(events.map(encode), st.just(True)),
    st.tuples(near_valid_events(), st.just(False)),
    st.tuples(near_valid_events(), st.just(False)),  # twice: where the edge cases are
    st.tuples(sized_events(), st.just(True)),
)

# --- signatures, paths, the rest

printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120)


@st.composite
def signature_headers(draw: st.DrawFn, body: bytes) -> tuple[dict[str, str], bool]:
    """A Stripe-Signature header (or none) and whether it validly signs `body`."""
    now = int(time.time())
    t = now + draw(st.integers(-60, 60))
    stale = now - TOLERANCE - draw(st.integers(5, 10**6))
    good = signature(body, t)
    garbage = draw(st.sampled_from(["0" * 64, "zz", "", good[:-1], good.upper()]))
    headers = {
        "valid": (f"t={t},v1={good}", True),
        "valid among others": (f"t={t},v1={garbage},v0={good},v1={good},v1=", True),
        "stale": (f"t={stale},v1={signature(body, stale)}", False),
        "stale, restamped": (f"t={t},v1={signature(body, stale)}", False),
        "other secret": (f"t={t},v1={signature(body, t, OTHER_SECRET)}", False),
        "other body": (f"t={t},v1={signature(body + b' ', t)}", False),
        "v0 only": (f"t={t},v0={good}", False),
        "no timestamp": (f"v1={good}", False),
        "bad timestamp": (f"t={draw(printable)},v1={good}", False),
        "garbled": (draw(printable), False),
        "many": (",".join([f"t={t}"] + [f"v1={garbage}"] * draw(st.integers(0, 200))), False),
        "missing": (None, False),
    }
    # A valid and a stale signature are the two that matter most: drawn more often.
    header, valid = headers[draw(st.sampled_from([*sorted(headers), "valid", "stale", "stale"]))]
    return ({} if header is None else {"Stripe-Signature": header}), valid


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """Anything: any method, path, signature, Content-Length and body."""
    body, intact = draw(bodies)
    headers, valid = draw(signature_headers(body))
    if draw(st.booleans()):
        headers["Content-Type"] = draw(printable)
    # Weighted towards what reaches the signature check: a POST to the endpoint.
    length = draw(st.sampled_from([None] * 6 + ["abc", "-1", "1e3", str(LIMIT * 100)]))
    if length is not None:
        headers["Content-Length"] = length
    path = draw(st.sampled_from(["endpoint"] * 4 + ["account", "anywhere"]))
    if path == "endpoint":
        path = draw(st.sampled_from(GOOD_PATHS))
    elif path == "account":
        path = "/webhooks/stripe/" + quote(draw(st.text(max_size=80)), safe="")
    else:
        path = "/" + quote(draw(st.text(max_size=40)), safe="/")
    method = draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE"]))
    return Request(method, path, body, headers, valid, intact and length is None)


def signed_delivery(body: bytes, intact: bool) -> Request:
    """What only the holder of the signing secret can send, signed now: past the
    signature check is where parsing and storing could still go wrong."""
    t = int(time.time())
    headers = {"Stripe-Signature": f"t={t},v1={signature(body, t)}"}
    return Request("POST", GOOD_PATHS[0], body, headers, True, intact)


def edited(path: tuple[str, ...], value: Any) -> bytes:
    """A real event with one field set to `value`."""
    document = fresh_id(event_2020("invoice_paid"))
    *parents, key = path
    target = document
    for parent in parents:
        target = target[parent]
    target[key] = value
    return json.dumps(document).encode()


async def answer_and_check(
    client: httpx.AsyncClient, engine: AsyncEngine, request: Request
) -> httpx.Response:
    """Send it; never a 5xx, and the ledger moved only as a 2xx answer says it did."""
    before = await rows(engine)
    response = await client.request(
        request.method, request.path, content=request.body, headers=request.headers
    )
    after = await rows(engine)
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if response.is_success:
        assert request.signed
        outcome = response.json()["outcome"]
        assert after[0] - before[0] == (outcome == "stored")
        # A conflicting payload already kept aside is not kept twice.
        assert after[1] - before[1] in ((0, 1) if outcome == "conflict" else (0,))
    else:
        assert after == before
    deliverable = request.method == "POST" and request.path in GOOD_PATHS
    if deliverable and request.signed and request.intact and len(request.body) <= LIMIT:
        assert response.status_code == 200, response.text
    return response


FUZZING = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZING
@given(request=requests())
async def test_no_request_gets_a_5xx_or_stores_a_row_without_a_valid_signature(
    client: httpx.AsyncClient, engine: AsyncEngine, request: Request
) -> None:
    await answer_and_check(client, engine, request)


@FUZZING
@given(body=st.one_of(st.tuples(near_valid_events(), st.just(False)), bodies))
# Found by this test once, kept as examples so that every run tries them.
@example(body=(edited(("created",), 2**62), False))
@example(body=(edited(("created",), 253402300800), False))
@example(body=(edited(("id",), "evt_" + "x" * 252), False))
@example(body=(edited(("type",), "t" * 129), False))
@example(body=(edited(("api_version",), "v" * 65), False))
@example(body=(edited(("data", "object", "object"), "o" * 65), False))
@example(body=(edited(("data", "object", "customer"), "cus_\x00"), False))
async def test_no_validly_signed_body_gets_a_5xx_and_only_events_are_stored(
    client: httpx.AsyncClient, engine: AsyncEngine, body: tuple[bytes, bool]
) -> None:
    await answer_and_check(client, engine, signed_delivery(*body))


async def test_a_declared_oversized_body_is_refused_without_reading_a_byte(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield b"x" * 1024

    response = await client.post(
        GOOD_PATHS[0],
        content=body(),
        headers={"Content-Length": str(1000 * 1024), "Stripe-Signature": "t=1,v1=0"},
    )
    assert response.status_code == 413
    assert pulled == 0
    assert await rows(engine) == (0, 0)


def test_the_served_endpoint_answers_413_before_an_oversized_body_is_sent(
    tmp_path: Path,
) -> None:
    """Over a real socket: only the headers go out, and the answer comes back anyway."""
    env = environment(sqlite_database(tmp_path), LEDGER_MAX_BODY_BYTES=str(LIMIT))
    with server_process(env, tmp_path) as server:
        host, port = server.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            head = (
                f"POST /webhooks/stripe HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Length: {100 * 1024 * 1024}\r\nStripe-Signature: t=1,v1=0\r\n\r\n"
            )
            conn.sendall(head.encode())
            answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")


async def test_a_captured_delivery_replayed_after_the_tolerance_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = encode(fresh_id(event_2020("invoice_paid")))
    captured = signed(body)
    first = await client.post(GOOD_PATHS[0], content=body, headers=captured)
    with time_machine.travel(time.time() + TOLERANCE + 1):
        replayed = await client.post(GOOD_PATHS[0], content=body, headers=captured)
    assert first.status_code == 200
    assert replayed.status_code == 400
    assert (
        replayed.json()["error"] == f"signature timestamp is older than the {TOLERANCE} s tolerance"
    )
    assert await rows(engine) == (1, 0)
