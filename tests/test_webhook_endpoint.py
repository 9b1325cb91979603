"""POST /webhooks/stripe: verified, stored exactly once, answered only after the commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.event_log import EventLog
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.databases import TestDatabase
from tests.support.signing import OTHER_SECRET, SECRET, encode, envelope, fresh_id, signed
from tests.support.stripe_fixtures import event_2020, resource

URL = "/webhooks/stripe"


@pytest.fixture
async def client(database: TestDatabase, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(database)) as client:
        yield client


def body_of(name: str = "invoice_paid") -> bytes:
    return encode(fresh_id(event_2020(name)))


async def stored(event_log: EventLog) -> list[str]:
    return [e.event_id for e in await event_log.read_after(0)]


async def test_a_signed_event_is_stored_and_acknowledged(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = body_of()
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200
    assert response.json() == {"received": True, "outcome": "stored"}
    [event] = await event_log.read_after(0)
    assert event.payload.encode() == body and event.source == "webhook"


async def test_a_current_layout_event_is_stored_with_its_routing_fields(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = encode(envelope(resource("invoice"), "invoice.paid"))
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200
    [event] = await event_log.read_after(0)
    assert (event.object_type, event.object_id, event.customer_id, event.api_version) == (
        "invoice",
        "in_1Pgc6tB7WZ01zgkWu9fdqL6I",
        "cus_QXg1o8vcGmoR32",
        "2025-03-31.basil",
    )


async def test_an_event_posted_twice_is_stored_once(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = body_of()
    first = await client.post(URL, content=body, headers=signed(body))
    second = await client.post(URL, content=body, headers=signed(body))
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["outcome"] == "duplicate"
    assert len(await stored(event_log)) == 1


async def test_a_tampered_body_is_refused_and_not_stored(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = body_of()
    headers = signed(body)
    tampered = body.replace(b'"amount_paid": 0', b'"amount_paid": 99900')
    assert tampered != body
    response = await client.post(URL, content=tampered, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": "no signature matches the endpoint's signing secret"}
    assert await stored(event_log) == []


async def test_a_missing_signature_is_refused(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    response = await client.post(URL, content=body_of())
    assert response.status_code == 400
    assert response.json()["error"] == "missing Stripe-Signature header"
    assert await stored(event_log) == []


async def test_a_garbled_signature_header_is_refused(client: httpx.AsyncClient) -> None:
    body = body_of()
    response = await client.post(URL, content=body, headers={"Stripe-Signature": "nonsense"})
    assert response.status_code == 400
    assert response.json()["error"] == "malformed Stripe-Signature header"


async def test_a_replayed_old_signature_is_refused(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = body_of()
    response = await client.post(
        URL, content=body, headers=signed(body, timestamp=int(time.time()) - 301)
    )
    assert response.status_code == 400
    assert "older than the 300 s tolerance" in response.json()["error"]
    assert await stored(event_log) == []


async def test_a_body_signed_with_an_unknown_secret_is_refused(client: httpx.AsyncClient) -> None:
    body = body_of()
    response = await client.post(URL, content=body, headers=signed(body, secret=OTHER_SECRET))
    assert response.status_code == 400


async def test_any_configured_secret_verifies_during_a_rotation(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    settings = make_settings(database, STRIPE_WEBHOOK_SECRET=f"{SECRET}, {OTHER_SECRET}")
    async with app_client(settings) as client:
        for secret in (SECRET, OTHER_SECRET):
            body = body_of()
            response = await client.post(URL, content=body, headers=signed(body, secret=secret))
            assert response.status_code == 200
    assert len(await stored(event_log)) == 2


async def test_signed_malformed_json_is_refused(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = b'{"id": "evt_1", "type": '
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 400
    assert response.json()["error"].startswith("body is not valid JSON")
    assert await stored(event_log) == []


async def test_signed_json_that_is_not_an_event_is_refused(client: httpx.AsyncClient) -> None:
    body = encode({"id": "cus_123", "object": "customer"})
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 400
    assert response.json()["error"] == "event has no Stripe event id (evt_...)"


async def test_a_thin_event_notification_is_refused_with_a_reason(
    client: httpx.AsyncClient,
) -> None:
    body = encode({"id": "evt_thin", "object": "v2.core.event", "type": "v1.billing.meter"})
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 400
    assert "snapshot" in response.json()["error"]


async def test_an_oversized_body_is_refused_by_its_declared_length(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    async with app_client(make_settings(database, LEDGER_MAX_BODY_BYTES=2048)) as client:
        body = body_of()
        assert len(body) > 2048
        response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 413
    assert response.json()["error"] == "body is larger than the 2048 byte limit"
    assert await stored(event_log) == []


async def test_an_oversized_chunked_body_is_refused_while_streaming(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    chunks_sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(1000):
            chunks_sent += 1
            yield b"x" * 1024

    async with app_client(make_settings(database, LEDGER_MAX_BODY_BYTES=4096)) as client:
        response = await client.post(URL, content=endless(), headers={"Stripe-Signature": "t=1"})
    assert response.status_code == 413
    assert chunks_sent < 1000


async def test_an_unknown_account_is_refused(client: httpx.AsyncClient) -> None:
    body = body_of()
    response = await client.post(f"{URL}/nobody", content=body, headers=signed(body))
    assert response.status_code == 404
    assert response.json()["error"] == "unknown account 'nobody'"


async def test_the_account_route_stores_under_that_account(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = body_of()
    response = await client.post(f"{URL}/default", content=body, headers=signed(body))
    assert response.status_code == 200
    [event] = await event_log.read_after(0)
    assert event.account == "default"


@pytest.mark.parametrize(
    ("setting", "livemode"),
    [({"STRIPE_API_KEY": "sk_test_" + "a" * 24}, True), ({"STRIPE_MODE": "live"}, False)],
)
async def test_an_event_from_the_other_mode_is_refused(
    database: TestDatabase,
    engine: AsyncEngine,
    event_log: EventLog,
    setting: dict[str, Any],
    livemode: bool,
) -> None:
    document = fresh_id(event_2020("invoice_paid"))
    document["livemode"] = livemode
    body = encode(document)
    async with app_client(make_settings(database, **setting)) as client:
        response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 400
    assert "mode event sent to a" in response.json()["error"]
    assert await stored(event_log) == []


async def test_an_event_type_we_do_not_use_is_stored_and_acknowledged(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = encode(envelope(resource("payout"), "payout.paid"))
    response = await client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200
    [event] = await event_log.read_after(0)
    assert event.type == "payout.paid"


async def test_a_conflicting_redelivery_is_acknowledged_and_kept_aside(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    original, other = encode(event_2020("charge_succeeded")), encode(event_2020("charge_failed"))
    await client.post(URL, content=original, headers=signed(original))
    response = await client.post(URL, content=other, headers=signed(other))
    assert response.status_code == 200 and response.json()["outcome"] == "conflict"
    [event] = await event_log.read_after(0)
    assert event.payload.encode() == original
    assert (await event_log.stats()).conflicts == 1


async def test_fifty_concurrent_deliveries_through_the_endpoint_store_one_row(
    client: httpx.AsyncClient, event_log: EventLog
) -> None:
    body = body_of()
    responses = await asyncio.gather(
        *(client.post(URL, content=body, headers=signed(body)) for _ in range(50))
    )
    assert {r.status_code for r in responses} == {200}
    assert sorted(r.json()["outcome"] for r in responses).count("stored") == 1
    assert len(await stored(event_log)) == 1


async def test_an_unreachable_database_answers_503_so_stripe_retries(
    database: TestDatabase,
) -> None:
    settings = make_settings(
        database,
        LEDGER_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere",
        LEDGER_COMMIT_TIMEOUT_SECONDS=5,
    )
    async with app_client(settings) as client:
        body = body_of()
        response = await client.post(URL, content=body, headers=signed(body))
        ready = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"error": "ledger unavailable, retry later"}
    assert ready.status_code == 503


async def test_health_is_up_and_ready_once_migrated(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_not_ready_while_migrations_are_pending(database: TestDatabase) -> None:
    async with app_client(make_settings(database)) as client:  # no `engine`: not migrated
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert "migrations pending" in ready.json()["reason"]


async def test_logs_name_the_event_and_outcome_but_never_a_secret(
    client: httpx.AsyncClient,
) -> None:
    body = body_of()
    with structlog.testing.capture_logs() as logs:
        await client.post(URL, content=body, headers=signed(body))
        await client.post(URL, content=body, headers=signed(body, secret=OTHER_SECRET))
    stored_line, refused_line = logs
    assert stored_line["event"] == "webhook_stored" and stored_line["outcome"] == "stored"
    assert stored_line["event_id"].startswith("evt_") and stored_line["type"] == "invoice.paid"
    assert stored_line["account"] == "default" and stored_line["latency_ms"] >= 0
    assert refused_line["event"] == "webhook_refused" and refused_line["status"] == 400
    assert SECRET not in repr(logs) and OTHER_SECRET not in repr(logs)
