"""The fake Stripe API (tests/support/fake_stripe) behaves as Stripe's list API does, over real
HTTP: newest-first cursor paging, filters, event retention, nested invoice lines, errors in
Stripe's shape, rate limiting and injected 500s; and stripe-python talks to it unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import stripe

from simulator.life import end_of, simulated_account
from simulator.stripe_account import BASIL, OLD, Item, Line, StripeAccount, unix
from tests.support.fake_stripe import Dataset, FakeStripe, serve_fake_stripe

T0 = datetime(2025, 1, 1, tzinfo=UTC)
AUTH = {"Authorization": "Bearer sk_test_fake"}


def get(fake: FakeStripe, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{fake.base_url}{path}", params=params, headers=AUTH)


def body(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def customers_account(count: int = 250) -> StripeAccount:
    """`count` customers, two created in each second, so ties on `created` are common."""
    acct = StripeAccount(BASIL, namespace="fake-customers")
    for i in range(count):
        acct.customer(f"cus_{i:04d}", at=T0 + timedelta(minutes=i // 2))
    return acct


@pytest.fixture
def customers() -> Iterator[FakeStripe]:
    with serve_fake_stripe(Dataset.from_account(customers_account())) as fake:
        yield fake


def subscriptions_account() -> StripeAccount:
    """One subscription in each status a backfill must see."""
    acct = StripeAccount(OLD, namespace="fake-subs")
    acct.price("price_m", amount="20.00")
    at = T0
    for name in ("active", "canceled", "expired", "trialing", "past_due"):
        at += timedelta(hours=1)
        customer = acct.customer(f"cus_{name}", at=at)
        trial_end = at + timedelta(days=14) if name == "trialing" else None
        status = "incomplete" if name == "expired" else None
        acct.subscribe(
            f"sub_{name}", customer, [Item("price_m")], at=at, trial_end=trial_end, status=status
        )
    at += timedelta(hours=1)
    acct.cancel("sub_canceled", at=at)
    acct.expire_incomplete("sub_expired", at=at)
    acct.set_status("sub_past_due", "past_due", at=at)
    return acct


# --- paging --------------------------------------------------------------------------------


def test_pages_newest_first_through_250_objects(customers: FakeStripe) -> None:
    pages = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = body(get(customers, "/v1/customers", **params))
        pages.append(page)
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    ids = [c["id"] for page in pages for c in page["data"]]
    assert [len(p["data"]) for p in pages] == [100, 100, 50]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert pages[0]["object"] == "list" and pages[0]["url"] == "/v1/customers"
    assert len(set(ids)) == 250
    # Newest first; customers created in the same second come by id, descending.
    assert ids == [f"cus_{i:04d}" for i in reversed(range(250))]


def test_starting_after_resumes_exactly_after_the_cursor(customers: FakeStripe) -> None:
    everything = customers.dataset.ids("customers")
    first = body(get(customers, "/v1/customers", limit=7))
    cursor = first["data"][-1]["id"]
    second = body(get(customers, "/v1/customers", limit=7, starting_after=cursor))
    assert [c["id"] for c in first["data"]] == everything[:7]
    assert [c["id"] for c in second["data"]] == everything[7:14]
    back = body(get(customers, "/v1/customers", limit=7, ending_before=everything[7]))
    assert [c["id"] for c in back["data"]] == everything[:7]
    assert back["has_more"] is False


def test_created_window_gte_and_lt(customers: FakeStripe) -> None:
    start, end = unix(T0 + timedelta(minutes=10)), unix(T0 + timedelta(minutes=20))
    page = body(
        get(customers, "/v1/customers", limit=100, **{"created[gte]": start, "created[lt]": end})
    )
    created = [c["created"] for c in page["data"]]
    # Two customers per minute: minutes 10 to 19 inclusive.
    assert len(created) == 20
    assert min(created) == start and max(created) < end
    exact = body(get(customers, "/v1/customers", created=start))
    assert [c["created"] for c in exact["data"]] == [start, start]


def test_limit_outside_1_to_100_is_refused(customers: FakeStripe) -> None:
    for limit in (0, 101, "ten"):
        response = get(customers, "/v1/customers", limit=limit)
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert response.json()["error"]["param"] == "limit"


def test_unknown_cursor_is_resource_missing(customers: FakeStripe) -> None:
    response = get(customers, "/v1/customers", starting_after="cus_gone")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("resource_missing", "starting_after")


def test_unknown_filter_is_refused_not_ignored(customers: FakeStripe) -> None:
    response = get(customers, "/v1/customers", subscription="sub_x")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parameter_unknown"


# --- filters -------------------------------------------------------------------------------


def test_subscriptions_default_omits_canceled_and_status_all_lists_them() -> None:
    with serve_fake_stripe(Dataset.from_account(subscriptions_account())) as fake:
        default = body(get(fake, "/v1/subscriptions", limit=100))
        every = body(get(fake, "/v1/subscriptions", limit=100, status="all"))
        canceled = body(get(fake, "/v1/subscriptions", status="canceled"))
    by_status = {s["status"]: s["id"] for s in every["data"]}
    assert set(by_status) == {"active", "canceled", "incomplete_expired", "trialing", "past_due"}
    assert {s["status"] for s in default["data"]} == {"active", "trialing", "past_due"}
    assert [s["id"] for s in canceled["data"]] == ["sub_canceled"]


def test_events_older_than_30_days_are_gone() -> None:
    acct = customers_account(40)
    now = T0 + timedelta(days=30, minutes=10)  # customers of minutes 0-9 are older than 30 days
    with serve_fake_stripe(Dataset.from_account(acct, now=now)) as fake:
        page = body(get(fake, "/v1/events", limit=100))
        old = next(e["id"] for e in acct.events if e["created"] < unix(now) - 30 * 86400)
        retrieve = get(fake, f"/v1/events/{old}")
        cursor = get(fake, "/v1/events", starting_after=old)
    assert len(page["data"]) == 20 and page["has_more"] is False
    assert all(e["created"] >= unix(now - timedelta(days=30)) for e in page["data"])
    assert retrieve.status_code == 404
    assert cursor.status_code == 400


def test_event_type_wildcard_and_types_array() -> None:
    acct = subscriptions_account()
    with serve_fake_stripe(Dataset.from_account(acct)) as fake:
        wildcard = body(get(fake, "/v1/events", limit=100, type="customer.subscription.*"))
        listed = body(get(fake, "/v1/events", limit=100, **{"types[0]": "customer.created"}))
    assert {e["type"] for e in wildcard["data"]} == {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
    assert len(listed["data"]) == 5


def test_invoice_lines_beyond_10_are_paginated() -> None:
    acct = StripeAccount(BASIL, namespace="fake-lines")
    customer = acct.customer("cus_many", at=T0)
    lines = [Line(f"Item {i}", "1.00") for i in range(25)]
    invoice = acct.create_invoice(customer, lines, at=T0)
    expected = [line["id"] for line in acct.object(invoice)["lines"]["data"]]
    with serve_fake_stripe(Dataset.from_account(acct)) as fake:
        embedded = body(get(fake, f"/v1/invoices/{invoice}"))["lines"]
        in_list = body(get(fake, "/v1/invoices"))["data"][0]["lines"]
        event = body(get(fake, "/v1/events", type="invoice.created"))["data"][0]
        paged: list[str] = []
        params: dict[str, Any] = {"limit": 10}
        while True:
            page = body(get(fake, f"/v1/invoices/{invoice}/lines", **params))
            paged += [line["id"] for line in page["data"]]
            if not page["has_more"]:
                break
            params["starting_after"] = page["data"][-1]["id"]
    assert len(embedded["data"]) == 10 and embedded["has_more"] is True
    assert embedded["url"] == f"/v1/invoices/{invoice}/lines"
    assert in_list == embedded
    assert len(event["data"]["object"]["lines"]["data"]) == 10
    assert paged == expected


def test_charges_expand_their_balance_transaction() -> None:
    acct = StripeAccount(BASIL, namespace="fake-expand")
    acct.price("price_m", amount="20.00")
    customer = acct.customer("cus_pay", at=T0)
    acct.subscribe("sub_pay", customer, [Item("price_m")], at=T0)
    acct.bill("sub_pay", at=T0, billing_reason="subscription_create")
    with serve_fake_stripe(Dataset.from_account(acct)) as fake:
        plain = body(get(fake, "/v1/charges"))["data"][0]
        expanded = body(get(fake, "/v1/charges", **{"expand[]": "data.balance_transaction"}))
        one = body(get(fake, f"/v1/charges/{plain['id']}", **{"expand[0]": "balance_transaction"}))
    assert isinstance(plain["balance_transaction"], str)
    txn = expanded["data"][0]["balance_transaction"]
    assert txn["id"] == plain["balance_transaction"] and txn["fee"] == 88  # 2.9% + 30c of 20.00
    assert one["balance_transaction"] == txn


def test_put_replaces_an_object_while_serving() -> None:
    acct = StripeAccount(BASIL, namespace="fake-put")
    customer = acct.customer("cus_late", at=T0)
    invoice = acct.create_invoice(customer, [Line("Setup", "5.00")], at=T0)
    dataset = Dataset.from_account(acct)
    with serve_fake_stripe(dataset) as fake:
        assert body(get(fake, f"/v1/invoices/{invoice}"))["status"] == "draft"
        acct.finalize_invoice(invoice, at=T0 + timedelta(days=40))
        acct.pay_invoice(invoice, at=T0 + timedelta(days=40))
        dataset.put(acct.object(invoice))
        for event in acct.events[-3:]:
            dataset.add_event(event)
        assert body(get(fake, f"/v1/invoices/{invoice}"))["status"] == "paid"
        # Created long ago: a created[gte] window over the payment does not find it.
        recent = {"created[gte]": unix(T0 + timedelta(days=39))}
        assert body(get(fake, "/v1/invoices", **recent))["data"] == []


# --- errors --------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after() -> None:
    with serve_fake_stripe(
        Dataset.from_account(customers_account(5)), rate_limit_per_second=3
    ) as fake:
        statuses = [get(fake, "/v1/customers").status_code for _ in range(3)]
        limited = get(fake, "/v1/customers")
        logged = [r.status for r in fake.requests]
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert limited.headers["Request-Id"].startswith("req_")
    assert logged == [200, 200, 200, 429]


def test_seeded_500s_come_at_the_rate_and_repeat() -> None:
    def run() -> list[int]:
        dataset = Dataset.from_account(customers_account(5))
        with (
            serve_fake_stripe(dataset, error_rate=0.25, seed=7) as fake,
            httpx.Client(base_url=fake.base_url, headers=AUTH) as client,
        ):
            responses = [client.get("/v1/customers") for _ in range(200)]
        failed = next(r for r in responses if r.status_code == 500)
        assert failed.json()["error"]["type"] == "api_error"
        return [r.status_code for r in responses]

    first, second = run(), run()
    assert first == second
    assert set(first) == {200, 500}
    assert 0.15 < first.count(500) / len(first) < 0.35


def test_publishable_key_is_refused_with_401(customers: FakeStripe) -> None:
    response = httpx.get(
        f"{customers.base_url}/v1/customers", headers={"Authorization": "Bearer pk_test_abc"}
    )
    assert response.status_code == 401
    assert "publishable" in response.json()["error"]["message"]
    assert response.headers["Request-Id"].startswith("req_")
    assert httpx.get(f"{customers.base_url}/v1/customers").status_code == 401


def test_unknown_id_is_404_resource_missing(customers: FakeStripe) -> None:
    response = get(customers, "/v1/invoices/in_missing")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error == error | {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "param": "id",
        "message": "No such invoice: 'in_missing'",
    }
    assert response.headers["Request-Id"].startswith("req_")
    assert get(customers, "/v1/nothing").status_code == 404


# --- through stripe-python -----------------------------------------------------------------


@asynccontextmanager
async def stripe_client(fake: FakeStripe) -> AsyncIterator[stripe.StripeClient]:
    http_client = stripe.HTTPXClient()
    try:
        yield stripe.StripeClient(
            "sk_test_x",
            base_addresses={"api": fake.base_url},
            http_client=http_client,
            max_network_retries=0,
        )
    finally:
        http_client.close()
        await http_client.close_async()


async def test_stripe_python_raw_request_with_a_created_window() -> None:
    acct = simulated_account(30, 3, seed=5)
    dataset = Dataset.from_account(acct)
    since = unix(end_of(3) - timedelta(days=20))
    with serve_fake_stripe(dataset) as fake:
        async with stripe_client(fake) as client:
            response = await client.raw_request_async(
                "get", "/v1/invoices", limit=100, created={"gte": since}
            )
        sent = fake.requests[-1]
    page = json.loads(response.body)
    expected = [i for i in dataset.ids("invoices") if (dataset.get(i) or {})["created"] >= since]
    assert [i["id"] for i in page["data"]] == expected[:100]
    assert expected and all(i["created"] >= since for i in page["data"])
    assert sent.path == "/v1/invoices" and sent.query["created[gte]"] == str(since)


async def test_stripe_python_auto_paging_lists_everything(customers: FakeStripe) -> None:
    async with stripe_client(customers) as client:
        page = await client.v1.customers.list_async({"limit": 100})
        ids = [customer.id async for customer in page.auto_paging_iter()]
    assert ids == customers.dataset.ids("customers")
    assert [r.query.get("starting_after") is not None for r in customers.requests] == [
        False,
        True,
        True,
    ]


async def test_stripe_python_raises_rate_limit_error_with_retry_after() -> None:
    dataset = Dataset.from_account(customers_account(5))
    with serve_fake_stripe(dataset, rate_limit_per_second=1) as fake:
        async with stripe_client(fake) as client:
            await client.raw_request_async("get", "/v1/customers")
            with pytest.raises(stripe.RateLimitError) as raised:
                await client.raw_request_async("get", "/v1/customers")
    assert raised.value.http_status == 429
    assert raised.value.headers is not None and raised.value.headers["Retry-After"] == "1"
    assert raised.value.request_id is not None


# --- the large account ---------------------------------------------------------------------


@pytest.mark.slow
def test_large_account_has_over_10000_objects_of_every_kind() -> None:
    started = time.perf_counter()
    acct = simulated_account(customers=400, months=12, seed=1)
    built = time.perf_counter()
    dataset = Dataset.from_account(acct, now=end_of(12))
    loaded = time.perf_counter()
    counts = dataset.counts()
    print(
        f"\nlarge account: {dataset.object_count()} objects {counts}; "
        f"built in {built - started:.1f} s, dataset in {loaded - built:.1f} s"
    )
    assert dataset.object_count() >= 10_000
    subscriptions = [dataset.get(i) or {} for i in dataset.ids("subscriptions")]
    statuses = {s["status"] for s in subscriptions}
    assert {"active", "canceled", "past_due", "incomplete_expired"} <= statuses
    assert any(s["cancel_at_period_end"] for s in subscriptions)
    assert counts["refunds"] > 0
    charges = [dataset.get(i) or {} for i in dataset.ids("charges")]
    assert any(c["status"] == "failed" for c in charges)


def test_large_account_is_deterministic() -> None:
    first = simulated_account(customers=25, months=4, seed=3, layout=OLD)
    second = simulated_account(customers=25, months=4, seed=3, layout=OLD)
    other = simulated_account(customers=25, months=4, seed=4, layout=OLD)
    assert first.events == second.events and first.backfill == second.backfill
    assert first.events != other.events
    assert max(e["created"] for e in first.events) < unix(end_of(4))
