"""`stripe-ledger simulate`: a realistic account as Stripe-shaped events, the same for a seed,
with every kind of change the issue lists, in either field layout."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from typing import Any

import pytest

from ledger.envelope import Source, parse_event
from projections.stripe_fields import read_invoice, read_subscription
from simulator.life import AccountLife, end_of, simulate
from simulator.outputs import is_snapshot
from simulator.stripe_account import BASIL, LAYOUTS, OLD, Layout, unix
from tests.support.cli_runner import invoke
from tests.support.databases import TestDatabase

CUSTOMERS, MONTHS = 120, 14


@cache
def events(layout: Layout = BASIL, seed: int = 5) -> tuple[dict[str, Any], ...]:
    return tuple(simulate(CUSTOMERS, MONTHS, seed, layout))


def objects(layout: Layout, event_type: str) -> list[dict[str, Any]]:
    return [e["data"]["object"] for e in events(layout) if e["type"] == event_type]


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    assert list(simulate(20, 3, 9)) == list(simulate(20, 3, 9))
    assert list(simulate(20, 3, 9)) != list(simulate(20, 3, 10))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_events_come_in_time_order_and_stop_at_the_end(layout: Layout) -> None:
    created = [e["created"] for e in events(layout)]
    assert created == sorted(created)
    assert created[-1] < unix(end_of(MONTHS))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_event_is_in_the_requested_api_version(layout: Layout) -> None:
    assert {e["api_version"] for e in events(layout)} == {layout}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_event_is_one_the_ledger_accepts(layout: Layout) -> None:
    for record in events(layout)[:3000]:
        source = Source.BACKFILL if is_snapshot(record) else Source.WEBHOOK
        parse_event(json.dumps(record), account="default", source=source)


def test_plans_are_monthly_yearly_and_weekly_in_three_currencies() -> None:
    subscriptions = [read_subscription(s) for s in objects(BASIL, "customer.subscription.created")]
    intervals = {i.price.interval for s in subscriptions for i in s.items}
    assert {"month", "year", "week"} <= intervals
    currencies = Counter(i["currency"] for i in objects(BASIL, "invoice.paid"))
    assert set(currencies) == {"usd", "eur", "gbp"}
    assert currencies.most_common(1)[0][0] == "usd"


def test_seats_are_billed_on_a_volume_tiered_price() -> None:
    prices = [
        item["price"]
        for s in objects(BASIL, "customer.subscription.created")
        for item in s["items"]["data"]
    ]
    tiered = [p for p in prices if p["billing_scheme"] == "tiered"]
    assert tiered and all(p["tiers_mode"] == "volume" for p in tiered)


def test_some_signups_have_a_trial_and_some_a_coupon() -> None:
    created = objects(BASIL, "customer.subscription.created")
    assert any(s["status"] == "trialing" for s in created)
    assert any(s["status"] == "active" for s in created)
    coupons = {d["coupon"]["duration"] for d in objects(BASIL, "customer.discount.created")}
    assert {"once", "repeating", "forever"} <= coupons


@pytest.mark.parametrize("layout", LAYOUTS)
def test_upgrades_and_downgrades_bill_prorations(layout: Layout) -> None:
    lines = [
        line
        for invoice in objects(layout, "invoice.created")
        for line in read_invoice(invoice).lines
        if line.proration
    ]
    assert any(line.amount < 0 for line in lines), "no credit for unused time"
    assert any(line.amount > 0 for line in lines), "no charge for the remaining time"
    reasons = {i["billing_reason"] for i in objects(layout, "invoice.created")}
    assert "subscription_update" in reasons


def test_failed_payments_recover_late_or_end_unpaid_or_canceled() -> None:
    statuses = Counter(s["status"] for s in objects(BASIL, "customer.subscription.updated"))
    assert statuses["past_due"] and statuses["unpaid"]
    failed_then_paid = {i["id"] for i in objects(BASIL, "invoice.payment_failed")} & {
        i["id"] for i in objects(BASIL, "invoice.paid")
    }
    assert failed_then_paid
    reasons = Counter(
        s["cancellation_details"]["reason"] for s in objects(BASIL, "customer.subscription.deleted")
    )
    assert reasons["payment_failed"] and reasons["cancellation_requested"]


def test_cancellations_happen_now_and_at_the_period_end() -> None:
    deleted = objects(BASIL, "customer.subscription.deleted")
    assert any(s["cancel_at_period_end"] for s in deleted)
    assert any(not s["cancel_at_period_end"] for s in deleted)


def test_refunds_full_and_partial() -> None:
    refunded = objects(BASIL, "charge.refunded")
    assert any(c["refunded"] for c in refunded)
    assert any(not c["refunded"] and c["amount_refunded"] > 0 for c in refunded)


def test_one_time_items_are_invoiced_apart() -> None:
    one_time = [
        line
        for invoice in objects(OLD, "invoice.created")
        for line in invoice["lines"]["data"]
        if line["price"] and line["price"]["type"] == "one_time"
    ]
    assert one_time


def test_churned_customers_sometimes_come_back() -> None:
    per_customer = Counter(s["customer"] for s in objects(BASIL, "customer.subscription.created"))
    deleted = {s["customer"] for s in objects(BASIL, "customer.subscription.deleted")}
    assert any(per_customer[c] > 1 for c in deleted)


def test_a_long_history_keeps_only_unfinished_objects_in_memory() -> None:
    life = AccountLife(60, 24, seed=2)
    for _ in life:
        pass
    kept = Counter(object_id.split("_")[0] for object_id in life.acct._objects)
    # Settled invoices and their charges are forgotten; customers and subscriptions stay.
    assert kept["in"] < 60
    assert kept["ch"] < 60


# --- the command ---------------------------------------------------------------------------


async def test_simulate_writes_jsonl_that_is_the_same_for_a_seed(
    database: TestDatabase, tmp_path: Any
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (first, second):
        code, _, err = await invoke(
            database, "simulate", "--customers", "15", "--months", "3", "--jsonl", str(path)
        )
        assert code == 0, err
    assert first.read_bytes() == second.read_bytes()
    lines = first.read_text().splitlines()
    assert lines and all(json.loads(line)["object"] == "event" for line in lines)


async def test_simulate_into_the_ledger_builds_the_projections(database: TestDatabase) -> None:
    code, _, err = await invoke(
        database, "simulate", "--customers", "20", "--months", "4", "--into-ledger"
    )
    assert code == 0, err
    assert " stored" in err
    expected = sum(1 for _ in simulate(20, 4, 1))
    assert f"{expected} stored" in err
    code, out, err = await invoke(database, "metrics", "--period", "2024-03", "--json")
    assert code == 0, err
    figures = json.loads(out)
    assert float(figures["mrr_end"]) > 0 and figures["active_customers"] > 0


async def test_simulate_into_the_ledger_twice_stores_nothing_new(database: TestDatabase) -> None:
    args = ("simulate", "--customers", "8", "--months", "2", "--into-ledger")
    assert (await invoke(database, *args))[0] == 0
    code, _, err = await invoke(database, *args)
    assert code == 0 and err.startswith("0 stored"), err


async def test_simulate_refuses_two_destinations(database: TestDatabase) -> None:
    code, _, err = await invoke(database, "simulate", "--jsonl", "-", "--into-ledger")
    assert code == 2 and "exactly one" in err
