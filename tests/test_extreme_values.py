"""No value in a validly signed event stops the read models: the Stripe-field readers bound
what they accept (an out-of-range value makes the event unreadable, logged), and whatever
still cannot be derived quarantines one customer. Unit tests of each bound, the issue's
reproductions on both engines, and a fuzzer posting extreme values through the app."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import Source, parse_event
from ledger.event_log import EventLog
from ledger.schema import customer_mrr, ledger_events
from projections.quarantine import quarantined
from projections.runner import ProjectionRunner
from projections.stripe_fields import (
    StripeShapeError,
    from_unix,
    read_balance_transaction,
    read_charge,
    read_coupon,
    read_invoice_line,
    read_price,
    read_subscription,
    read_subscription_item,
    ref_id,
)
from projections.stripe_fields._read import LATEST_TIME, MAX_AMOUNT, MAX_QUANTITY
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.databases import TestDatabase
from tests.support.signing import encode, signed
from tests.support.stripe_fixtures import event_2020

ACCOUNT = "default"
TOKEN = "dash_" + "X1c2V3b4N5m6A7s8D9f0"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
U64 = 2**64 - 1


def subscription() -> dict[str, Any]:
    obj: dict[str, Any] = event_2020("subscription_updated")["data"]["object"]
    return obj


def item() -> dict[str, Any]:
    found: dict[str, Any] = subscription()["items"]["data"][0]
    return found


def price() -> dict[str, Any]:
    found: dict[str, Any] = item()["price"]
    return found


# --- the bounds, reader by reader ---------------------------------------------------------


def test_a_time_past_2199_makes_a_subscription_unreadable_naming_the_field() -> None:
    sub = subscription() | {"current_period_end": 10**17}
    with pytest.raises(StripeShapeError, match="current_period_end: 100000000000000000 is outside"):
        read_subscription(sub)


def test_a_trial_end_past_2199_makes_a_subscription_unreadable() -> None:
    with pytest.raises(StripeShapeError, match="trial_end"):
        read_subscription(subscription() | {"trial_end": 10**17})


def test_the_last_second_before_2200_is_a_time() -> None:
    assert from_unix(LATEST_TIME - 1) == datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_a_time_from_2200_on_is_out_of_range() -> None:
    with pytest.raises(StripeShapeError, match=r"outside 1970-01-01\.\.2199-12-31"):
        from_unix(LATEST_TIME)


def test_a_time_before_1970_is_out_of_range() -> None:
    with pytest.raises(StripeShapeError):
        from_unix(-1)


def test_an_amount_of_twelve_digits_is_read() -> None:
    charge = event_2020("charge_succeeded")["data"]["object"] | {"amount": MAX_AMOUNT}
    assert read_charge(charge).amount == MAX_AMOUNT


def test_an_amount_beyond_twelve_digits_makes_a_charge_unreadable() -> None:
    charge = event_2020("charge_succeeded")["data"]["object"] | {"amount": U64}
    with pytest.raises(StripeShapeError, match="amount: 18446744073709551615 is beyond"):
        read_charge(charge)


def test_a_negative_amount_beyond_twelve_digits_is_unreadable() -> None:
    with pytest.raises(StripeShapeError, match="fee"):
        read_balance_transaction({"id": "txn_1", "fee": -(10**12)})


def test_a_unit_amount_of_2_64_minus_1_makes_a_price_unreadable() -> None:
    with pytest.raises(StripeShapeError, match="unit_amount"):
        read_price(price() | {"unit_amount": U64, "unit_amount_decimal": None})


def test_a_unit_amount_decimal_beyond_twelve_digits_makes_a_price_unreadable() -> None:
    with pytest.raises(StripeShapeError, match="unit_amount_decimal"):
        read_price(price() | {"unit_amount_decimal": str(U64)})


def test_a_decimal_with_a_huge_exponent_is_refused_before_it_is_expanded() -> None:
    # 10**999999999 would take minutes and gigabytes to build as an integer.
    for huge in ("1e999999999", "1e-999999999"):
        with pytest.raises(StripeShapeError, match="out of range"):
            read_price(price() | {"unit_amount_decimal": huge})


def test_a_decimal_with_more_than_twelve_places_is_unreadable() -> None:
    with pytest.raises(StripeShapeError, match="more than 12 decimal places"):
        read_price(price() | {"unit_amount_decimal": "1.0000000000001"})


def test_a_decimal_with_twelve_places_is_read_exactly() -> None:
    found = read_price(price() | {"unit_amount_decimal": "0.000000000001"}).unit_amount
    assert found == Fraction(1, 10**12)


def test_a_quantity_of_2_64_minus_1_makes_a_subscription_item_unreadable() -> None:
    with pytest.raises(StripeShapeError, match="quantity: 18446744073709551615 is outside"):
        read_subscription_item(item() | {"quantity": U64})


def test_a_quantity_of_nine_digits_is_read() -> None:
    assert read_subscription_item(item() | {"quantity": MAX_QUANTITY}).quantity == MAX_QUANTITY


def test_a_negative_quantity_is_unreadable() -> None:
    with pytest.raises(StripeShapeError, match="quantity"):
        read_subscription_item(item() | {"quantity": -1})


def test_a_quantity_decimal_beyond_nine_digits_makes_an_invoice_line_unreadable() -> None:
    line = event_2020("invoice_paid")["data"]["object"]["lines"]["data"][0]
    with pytest.raises(StripeShapeError, match="quantity_decimal"):
        read_invoice_line(line | {"quantity_decimal": "1e10"})


def test_a_percent_off_above_100_makes_a_coupon_unreadable() -> None:
    coupon = {"id": "co_1", "duration": "forever", "percent_off": 1e30}
    with pytest.raises(StripeShapeError, match="percent_off"):
        read_coupon(coupon)


def test_an_interval_count_beyond_three_years_of_days_makes_a_price_unreadable() -> None:
    recurring = price()["recurring"] | {"interval": "day", "interval_count": 1096}
    with pytest.raises(StripeShapeError, match="interval_count"):
        read_price(price() | {"recurring": recurring})


def test_an_exchange_rate_beyond_a_million_makes_a_balance_transaction_unreadable() -> None:
    with pytest.raises(StripeShapeError, match="exchange_rate"):
        read_balance_transaction({"id": "txn_1", "exchange_rate": "1e7"})


def test_an_id_longer_than_255_characters_names_no_object() -> None:
    assert ref_id("cus_" + "x" * 251) == "cus_" + "x" * 251
    assert ref_id("cus_" + "x" * 252) is None


def test_a_currency_that_is_not_three_letters_names_no_currency() -> None:
    assert read_price(price() | {"currency": "usdx"}).currency is None
    assert read_price(price() | {"currency": "€ur"}).currency is None
    assert read_price(price() | {"currency": "eur"}).currency == "eur"


# --- the reproductions: the read models go on, on both engines ---------------------


def subscription_event(customer: str, **fields: Any) -> dict[str, Any]:
    event = event_2020("subscription_updated")
    event["id"] = f"evt_{uuid.uuid4().hex[:24]}"
    obj = event["data"]["object"]
    obj["id"] = f"sub_{customer.removeprefix('cus_')}"
    obj["customer"] = customer
    first = obj["items"]["data"][0]
    first["price"] |= {"unit_amount": 1000, "unit_amount_decimal": "1000"}
    first["plan"] |= {"amount": 1000, "amount_decimal": "1000"}
    for key, value in fields.items():
        if key in ("quantity",):
            first[key] = value
        elif key == "unit_amount":
            first["price"] |= {"unit_amount": value, "unit_amount_decimal": str(value)}
            first["plan"] |= {"amount": value, "amount_decimal": str(value)}
        else:
            obj[key] = value
    return event


async def derive_beside_a_good_customer(engine: AsyncEngine, bad: dict[str, Any]) -> None:
    """Append the bad event and a good customer's, catch up: the runner reaches the head,
    the good customer is derived, and nobody is quarantined (the value was bounded)."""
    events = [bad, subscription_event("cus_good")]
    parsed = [parse_event(encode(e), account=ACCOUNT, source=Source.WEBHOOK) for e in events]
    await EventLog(engine).append(parsed)
    runner = ProjectionRunner(engine)
    await runner.catch_up(ACCOUNT)
    async with engine.connect() as conn:
        head = await conn.scalar(select(func.max(ledger_events.c.position)))
        good = await conn.scalar(
            select(func.count()).where(customer_mrr.c.customer_id == "cus_good")
        )
        assert await quarantined(conn) == []
    assert await runner.position(ACCOUNT) == head
    assert good
    assert await runner.rebuild(ACCOUNT) == 2


async def test_a_current_period_end_of_10_17_does_not_stop_the_read_models(
    engine: AsyncEngine,
) -> None:
    await derive_beside_a_good_customer(
        engine, subscription_event("cus_bad", current_period_end=10**17)
    )


async def test_a_trial_end_of_10_17_does_not_stop_the_read_models(engine: AsyncEngine) -> None:
    await derive_beside_a_good_customer(
        engine, subscription_event("cus_bad", status="trialing", trial_end=10**17)
    )


async def test_a_unit_amount_of_2_64_minus_1_does_not_stop_the_read_models(
    engine: AsyncEngine,
) -> None:
    await derive_beside_a_good_customer(engine, subscription_event("cus_bad", unit_amount=U64))


async def test_a_quantity_of_2_64_minus_1_does_not_stop_the_read_models(
    engine: AsyncEngine,
) -> None:
    await derive_beside_a_good_customer(engine, subscription_event("cus_bad", quantity=U64))


async def test_a_refund_id_longer_than_255_characters_inside_a_charge_does_not_stop_routing(
    engine: AsyncEngine,
) -> None:
    # The charge's customer is routed its refunds' balance transactions by refund id.
    charge = event_2020("charge_refunded")
    charge["id"] = f"evt_{uuid.uuid4().hex[:24]}"
    charge["data"]["object"]["refunds"]["data"][0]["id"] = "re_" + "x" * 5000
    await derive_beside_a_good_customer(engine, charge)


# --- the fuzzer: extreme values in every field the readers touch --------------------------

times = st.sampled_from(
    [-1, 0, 1, LATEST_TIME - 1, LATEST_TIME, 253402300799, 253402300800, 10**17, 2**63 - 1, U64]
)
amounts = st.sampled_from(
    [-(2**63), -(10**12), -1, 0, MAX_AMOUNT, MAX_AMOUNT + 1, 2**31, 2**53 + 1, 2**63 - 1, U64]
)
quantities = st.sampled_from([-1, 0, 1, MAX_QUANTITY, MAX_QUANTITY + 1, 2**31, 2**63 - 1, U64])
decimals = st.sampled_from(
    ["0", "-0", "1e999999999", "1e-999999999", "NaN", "Infinity", "0.0000000000001",
     "9" * 40, "1" * 300, "12.5", "", "abc", 1e308, -1e308, 0.1]
)  # fmt: skip
currencies = st.sampled_from(
    ["usd", "USD", "eur", "jpy", "", "us", "usdx", "中文字", "éur", "x" * 300]
)
ids = st.sampled_from(
    ["", "x", "cus_" + "x" * 251, "cus_" + "x" * 252, "y" * 5000, "cus_é", "\u202e", "cus_ok"]
)


def nested(depth: int, as_list: bool) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


deep = st.builds(nested, st.sampled_from([2, 50, 150, 190]), st.booleans())
odd: st.SearchStrategy[Any] = st.one_of(
    deep,
    st.sampled_from([None, True, [], {}, [[]], {"data": [[1]]}, {"object": "list", "data": {}}]),
    st.lists(st.integers(), max_size=3),
)
VALUES = {"time": times, "amount": amounts, "quantity": quantities, "decimal": decimals,
          "currency": currencies, "id": ids}  # fmt: skip

S = ("data", "object")
SUB_ITEM = (*S, "items", "data", 0)
LINE = (*S, "lines", "data", 0)
TEMPLATES: dict[str, list[tuple[tuple[Any, ...], str]]] = {
    "subscription_updated": [
        *(
            ((*S, k), "time")
            for k in (
                "created",
                "start_date",
                "billing_cycle_anchor",
                "trial_start",
                "trial_end",
                "cancel_at",
                "canceled_at",
                "ended_at",
                "current_period_start",
                "current_period_end",
            )
        ),
        ((*S, "pause_collection", "resumes_at"), "time"),
        ((*SUB_ITEM, "current_period_end"), "time"),
        ((*SUB_ITEM, "quantity"), "quantity"),
        ((*SUB_ITEM, "price", "unit_amount"), "amount"),
        ((*SUB_ITEM, "price", "unit_amount_decimal"), "decimal"),
        ((*SUB_ITEM, "plan", "amount"), "amount"),
        ((*SUB_ITEM, "price", "currency"), "currency"),
        ((*SUB_ITEM, "price", "recurring", "interval_count"), "quantity"),
        ((*SUB_ITEM, "id"), "id"),
        ((*SUB_ITEM, "price", "id"), "id"),
        ((*S, "currency"), "currency"),
        ((*S, "id"), "id"),
        ((*S, "discount", "coupon", "percent_off"), "decimal"),
        ((*S, "discount", "coupon", "amount_off"), "amount"),
        ((*S, "discount", "start"), "time"),
        ((*S, "discount", "end"), "time"),
    ],
    "invoice_paid": [
        *(
            ((*S, k), "amount")
            for k in ("amount_due", "amount_paid", "amount_remaining", "subtotal", "total", "tax")
        ),
        ((*S, "created"), "time"),
        ((*S, "status_transitions", "paid_at"), "time"),
        ((*S, "currency"), "currency"),
        ((*S, "id"), "id"),
        ((*S, "subscription"), "id"),
        ((*LINE, "amount"), "amount"),
        ((*LINE, "quantity"), "quantity"),
        ((*LINE, "period", "start"), "time"),
        ((*LINE, "period", "end"), "time"),
        ((*LINE, "id"), "id"),
    ],
    "charge_succeeded": [
        ((*S, "amount"), "amount"),
        ((*S, "amount_refunded"), "amount"),
        ((*S, "created"), "time"),
        ((*S, "currency"), "currency"),
        ((*S, "id"), "id"),
        ((*S, "invoice"), "id"),
        ((*S, "balance_transaction", "fee"), "amount"),
        ((*S, "balance_transaction", "exchange_rate"), "decimal"),
        ((*S, "balance_transaction", "created"), "time"),
        ((*S, "balance_transaction", "id"), "id"),
    ],
    "charge_refunded": [
        ((*S, "refunds", "data", 0, "id"), "id"),
        ((*S, "refunds", "data", 0, "amount"), "amount"),
        ((*S, "refunds", "data", 0, "created"), "time"),
        ((*S, "refunds", "data"), "list"),
        ((*S, "amount_refunded"), "amount"),
    ],
    "refund_created": [
        ((*S, "amount"), "amount"),
        ((*S, "created"), "time"),
        ((*S, "charge"), "id"),
        ((*S, "currency"), "currency"),
        ((*S, "id"), "id"),
    ],
    "charge_dispute_created": [
        ((*S, "amount"), "amount"),
        ((*S, "created"), "time"),
        ((*S, "charge"), "id"),
        ((*S, "balance_transactions"), "list"),
    ],
    "customer_updated": [
        ((*S, "created"), "time"),
        ((*S, "currency"), "currency"),
        ((*S, "email"), "id"),
        ((*S, "name"), "id"),
    ],
}
CUSTOMERS = ("cus_fuzz_a", "cus_fuzz_b")


def put(document: Any, path: tuple[Any, ...], value: Any) -> None:
    """Set `path` in the document, creating objects along it (a list index must exist)."""
    target = document
    for step in path[:-1]:
        if isinstance(step, int):
            if not isinstance(target, list) or len(target) <= step:
                return
            target = target[step]
            continue
        if not isinstance(target.get(step), dict | list):
            target[step] = {}
        target = target[step]
    if isinstance(target, dict):
        target[path[-1]] = value


@st.composite
def extreme_events(draw: st.DrawFn) -> dict[str, Any]:
    """A real event of one of our customers with one to four fields the readers read set
    to extreme values (or odd shapes), and deep nesting in its metadata."""
    name = draw(st.sampled_from(sorted(TEMPLATES)))
    event = event_2020(name)
    event["id"] = f"evt_{uuid.uuid4().hex[:24]}"
    obj = event["data"]["object"]
    if "customer" in obj:
        obj["customer"] = draw(st.sampled_from(CUSTOMERS))
    elif name == "customer_updated":
        obj["id"] = draw(st.sampled_from(CUSTOMERS))
    for _ in range(draw(st.integers(1, 4))):
        path, kind = draw(st.sampled_from(TEMPLATES[name]))
        value = draw(VALUES[kind] if kind in VALUES and draw(st.integers(0, 4)) else odd)
        if kind == "list":  # long lists of objects, with extreme amounts and ids
            value = [
                {"id": draw(ids) or f"obj_{i}", "object": "refund", "amount": draw(amounts),
                 "fee": draw(amounts), "currency": "usd"}
                for i in range(draw(st.sampled_from([0, 1, 60])))
            ]  # fmt: skip
        put(event, path, value)
    if draw(st.booleans()):
        obj["metadata"] = {"deep": draw(deep)}
    return event


@pytest.fixture
async def client(database: TestDatabase, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN)
    async with app_client(settings) as client:
        yield client


async def read_everything(client: httpx.AsyncClient) -> None:
    paths = [
        "/api/v1/metrics",
        "/api/v1/metrics?period=2021-06",
        "/api/v1/movements",
        "/api/v1/movements?period=2021",
        *(f"/api/v1/customers/{c}" for c in CUSTOMERS),
        "/",
    ]
    for path in paths:
        response = await client.get(path, headers=AUTH)
        assert response.status_code < 500, (path, response.text[:300])


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=st.lists(extreme_events(), min_size=1, max_size=3))
async def test_extreme_values_never_get_a_5xx_nor_stop_the_read_models(
    client: httpx.AsyncClient, engine: AsyncEngine, events: list[dict[str, Any]]
) -> None:
    for event in events:
        body = json.dumps(event, ensure_ascii=False).encode()
        response = await client.post(
            "/webhooks/stripe", content=body, headers=signed(body, timestamp=int(time.time()))
        )
        assert response.status_code < 500, response.text[:300]
    runner = ProjectionRunner(engine)
    await runner.catch_up(ACCOUNT)
    async with engine.connect() as conn:
        head = int(await conn.scalar(select(func.max(ledger_events.c.position))) or 0)
    assert await runner.position(ACCOUNT) == head
    await read_everything(client)
