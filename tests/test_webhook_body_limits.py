"""What a signed body may hold: nesting within a documented depth, no NUL anywhere. Either
is refused with a one-line 400 before anything can fail on it, and nothing is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import MAX_DEPTH
from ledger.event_log import EventLog
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.databases import TestDatabase
from tests.support.signing import envelope, signed
from tests.support.stripe_fixtures import resource

URL = "/webhooks/stripe"
# The event, its `data` and its `data.object` hold the nested `metadata` value.
_ENVELOPE_DEPTH = 3


@pytest.fixture
async def client(database: TestDatabase, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(database)) as client:
        yield client


def nested_body(depth: int) -> bytes:
    """A customer.updated event whose JSON is `depth` levels deep, lists in `metadata`."""
    marker = "NESTED"
    event = envelope({**resource("customer"), "metadata": marker}, "customer.updated")
    inner = depth - _ENVELOPE_DEPTH
    return json.dumps(event).replace(f'"{marker}"', "[" * inner + "]" * inner).encode()


def body_with(metadata_json: str) -> bytes:
    marker = "METADATA"
    event = envelope({**resource("customer"), "metadata": marker}, "customer.updated")
    return json.dumps(event).replace(f'"{marker}"', metadata_json).encode()


async def test_a_body_nested_to_the_depth_limit_is_stored(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = nested_body(MAX_DEPTH)
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200
    assert len(await event_log.read_after(0)) == 1


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200, 254, 255, 300, 1024, 2000])
async def test_a_body_nested_deeper_than_the_limit_is_refused_with_one_line(
    client: httpx.AsyncClient, event_log: EventLog, depth: int
) -> None:
    body = nested_body(depth)
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 400
    reason = response.json()["error"]
    assert "nested deeper" in reason or "not valid JSON" in reason
    assert "\n" not in reason
    assert await event_log.read_after(0) == []


@pytest.mark.parametrize(
    "metadata", ['{"note": "a\\u0000b"}', '{"a\\u0000b": "note"}', '["x", ["\\u0000"]]']
)
async def test_a_nul_escape_in_a_payload_is_refused_and_json_queries_keep_working(
    client: httpx.AsyncClient, engine: AsyncEngine, event_log: EventLog, metadata: str
) -> None:
    plain = body_with('{"note": "plain"}')
    assert (await client.post(URL, content=plain, headers=signed(plain))).status_code == 200
    body = body_with(metadata)
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 400
    assert response.json() == {"error": "body contains a NUL character (\\u0000)"}
    query = (
        "SELECT count(*) FROM ledger_events WHERE payload::jsonb ->> 'type' IS NOT NULL"
        if engine.dialect.name == "postgresql"
        else "SELECT count(*) FROM ledger_events WHERE json_extract(payload, '$.type') IS NOT NULL"
    )
    async with engine.connect() as conn:
        assert await conn.scalar(text(query)) == 1
    assert len(await event_log.read_after(0)) == 1


async def test_an_escaped_backslash_before_u0000_is_no_nul_and_is_stored(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = body_with('{"path": "C:\\\\u0000"}')
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200
    assert len(await event_log.read_after(0)) == 1


async def test_a_raw_nul_byte_in_a_body_is_refused_with_one_line(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = body_with('{"note": "a\x00b"}')
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 400
    assert response.json() == {"error": "body contains a NUL byte"}
    assert await event_log.read_after(0) == []
