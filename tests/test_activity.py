"""The activity stream (the old KISSmetrics Stripe import's events, without its shortcomings)
against SCENARIOS.md: on both engines, in both field layouts, events delivered shuffled and
with duplicates. Times not in SCENARIOS.md come from the scenario streams: a renewal is a
draft at the period start, paid an hour later (tests/support/scenarios._cycle)."""

from __future__ import annotations

import copy
import csv
import io
import json
import random
from collections import defaultdict
from datetime import datetime
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import NewEvent
from ledger.event_log import EventLog, StoredEvent
from ledger.schema import activity
from projections.activity import EVENT_RANK, activity_rows
from projections.customer_facts import read_customer_facts
from projections.customer_history import derive_customer_history
from projections.metric_settings import DEFAULT
from projections.money import major_units
from projections.runner import ProjectionRunner
from simulator.stripe_account import BASIL, LAYOUTS, OLD, Item, StripeAccount
from tests.support.cli_runner import invoke
from tests.support.databases import TestDatabase
from tests.support.feeding import (
    ACCOUNT,
    as_stored,
    chunks,
    ledger_events,
    shuffled_with_duplicates,
)
from tests.support.scenarios import ALL_SCENARIOS, Scenario, at

BILLED, CANCELED = "Subscription Billed", "Subscription Canceled"
UPGRADED, DOWNGRADED = "Subscription Upgraded", "Subscription Downgraded"
REACTIVATED = "Subscription Reactivated"


async def project(engine: AsyncEngine, event_log: EventLog, scenario: Scenario) -> None:
    """Deliver the scenario shuffled, with duplicates, the runner catching up now and then."""
    rng = random.Random(f"activity-{scenario.name}-{scenario.layout}")
    runner = ProjectionRunner(engine, batch_size=7)
    for batch in chunks(shuffled_with_duplicates(ledger_events(scenario), rng), rng):
        await event_log.append(batch)
        if rng.random() < 0.3:
            await runner.catch_up(ACCOUNT)
    await runner.catch_up(ACCOUNT)


async def stream(engine: AsyncEngine, customer_id: str) -> list[dict[str, Any]]:
    """One customer's stored activity, in time order (a change before the bill it causes)."""
    async with engine.connect() as conn:
        result = await conn.execute(
            select(activity).where(
                activity.c.account == ACCOUNT, activity.c.customer_id == customer_id
            )
        )
        rows = [dict(row._mapping) for row in result]
    return sorted(rows, key=lambda r: (r["occurred_at"], EVENT_RANK[r["event_name"]]))


def money(minor: int | str | None) -> str | None:
    return None if minor is None else major_units(Fraction(minor), "usd")


def billed(rows: list[dict[str, Any]]) -> list[tuple[datetime, str | None, str | None, str]]:
    return [
        (r["occurred_at"], r["subscription_id"], money(r["amount"]), r["plan"])
        for r in rows
        if r["event_name"] == BILLED
    ]


# --- S3: billed amounts, prorations, upgrades and downgrades -------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_s3_every_paid_invoice_is_billed_at_what_was_paid_prorations_included(
    engine: AsyncEngine, event_log: EventLog, layout: str
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S3"](layout))
    rows = await stream(engine, "cus_I")
    assert billed(rows) == [
        (at(2025, 1, 1), "sub_I", "100.00", "Starter"),
        (at(2025, 2, 1, 1), "sub_I", "100.00", "Starter"),
        (at(2025, 3, 1, 1), "sub_I", "100.00", "Starter"),
        (at(2025, 4, 1, 1), "sub_I", "100.00", "Starter"),
        # The proration invoice: -50.00 + 100.00, billed at what was paid.
        (at(2025, 4, 16), "sub_I", "50.00", "Business"),
        (at(2025, 5, 1, 1), "sub_I", "150.00", "Team"),
    ]
    assert {(r["billing_months"], r["currency"]) for r in rows if r["event_name"] == BILLED} == {
        ("1", "usd")
    }
    assert all(r["invoice_id"] for r in rows if r["event_name"] == BILLED)


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_s3_upgrade_and_downgrade_carry_the_mrr_before_and_after(
    engine: AsyncEngine, event_log: EventLog, layout: str
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S3"](layout))
    changes = [
        (r["occurred_at"], r["event_name"], r["mrr_before_exact"], r["mrr_after_exact"], r["plan"])
        for r in await stream(engine, "cus_I")
        if r["event_name"] in (UPGRADED, DOWNGRADED)
    ]
    # The schedule's creation on 04-20 is no change; its phase starting on 05-01 is.
    assert changes == [
        (at(2025, 4, 16), UPGRADED, "10000/1", "20000/1", "Business"),
        (at(2025, 5, 1), DOWNGRADED, "20000/1", "15000/1", "Team"),
    ]


# --- S4: cancel at period end --------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_s4_a_cancellation_at_period_end_is_dated_when_it_ends_with_its_reason(
    engine: AsyncEngine, event_log: EventLog, layout: str
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S4"](layout))
    canceled = [r for r in await stream(engine, "cus_J") if r["event_name"] == CANCELED]
    assert [
        (r["occurred_at"], r["subscription_id"], r["cancellation_reason"], r["plan"])
        for r in canceled
    ] == [(at(2025, 6, 1), "sub_J", "cancellation_requested", "Plus")]
    assert len(json.loads(canceled[0]["event_ids"])) == 1  # customer.subscription.deleted


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_s4_the_other_customer_keeps_being_billed(
    engine: AsyncEngine, event_log: EventLog, layout: str
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S4"](layout))
    rows = await stream(engine, "cus_K")
    assert billed(rows) == [
        (at(2025, 4, 15, 10), "sub_K", "20.00", "Basic"),
        (at(2025, 5, 15, 11), "sub_K", "20.00", "Basic"),
        (at(2025, 6, 15, 11), "sub_K", "20.00", "Basic"),
    ]
    assert {r["event_name"] for r in rows} == {BILLED}


# --- S5: two subscriptions of one customer -----------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_s5_each_subscription_of_a_customer_is_canceled_on_its_own_date(
    engine: AsyncEngine, event_log: EventLog, layout: str
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S5"](layout))
    rows = await stream(engine, "cus_L")
    assert [
        (r["occurred_at"], r["subscription_id"]) for r in rows if r["event_name"] == CANCELED
    ] == [
        (at(2025, 7, 5, 15), "sub_L1"),
        (at(2025, 7, 20, 15), "sub_L2"),
    ]


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_s5_each_subscription_of_a_customer_is_billed(
    engine: AsyncEngine, event_log: EventLog, layout: str
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S5"](layout))
    rows = await stream(engine, "cus_L")
    assert billed(rows) == [
        (at(2025, 6, 1, 10), "sub_L1", "40.00", "Add-on"),
        (at(2025, 6, 10, 10), "sub_L2", "60.00", "Core"),
        (at(2025, 7, 1, 11), "sub_L1", "40.00", "Add-on"),
        (at(2025, 7, 10, 11), "sub_L2", "60.00", "Core"),
    ]
    # A second subscription starting is no upgrade of the customer's first one.
    assert not [r for r in rows if r["event_name"] in (UPGRADED, DOWNGRADED)]


# --- the other shortcomings of the old import ------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_a_one_time_item_on_a_subscription_invoice_is_not_billed_to_the_subscription(
    engine: AsyncEngine, event_log: EventLog, layout: str
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S8"](layout))
    # S8: seats 60.00 + "Onboarding" 200.00 on 01-01; seats + 500.00 of usage on 02-01; the
    # voided March invoice is no billing.
    assert billed(await stream(engine, "cus_X")) == [
        (at(2026, 1, 1), "sub_X", "60.00", "Seat"),
        (at(2026, 2, 1, 1), "sub_X", "560.00", "Seat"),
        (at(2026, 4, 1, 1), "sub_X", "60.00", "Seat"),
    ]


async def test_an_invoice_paid_late_is_billed_when_it_is_paid(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S2"](BASIL))
    # sub_G2's 03-19 invoice failed and was paid on 03-25: 100.00 + 20.00 tax.
    assert billed(await stream(engine, "cus_G2")) == [
        (at(2025, 3, 25, 9), "sub_G2", "120.00", "Growth"),
    ]


async def test_billing_months_is_the_price_interval_in_months(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S1"](OLD))
    months = {}
    for customer in ("cus_A", "cus_B", "cus_C", "cus_D", "cus_E"):
        months[customer] = {r["billing_months"] for r in await stream(engine, customer)}
    # A year is 12 months, 52 weeks or 365 days (as in MRR), to 4 places half-even.
    assert months == {
        "cus_A": {"1"},
        "cus_B": {"12"},
        "cus_C": {"3"},
        "cus_D": {"0.2308"},
        "cus_E": {"0.0329"},
    }
    assert await stream(engine, "cus_F") == []  # incomplete, expired, never billed


async def test_a_customer_coming_back_after_churn_is_reactivated(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S9"](BASIL))
    rows = await stream(engine, "cus_AB")
    assert [
        (r["occurred_at"], r["event_name"], r["mrr_before_exact"], r["mrr_after_exact"])
        for r in rows
        if r["event_name"] != BILLED
    ] == [
        (at(2025, 3, 10, 12), DOWNGRADED, "11600/1", "10000/1"),
        # 03-20 the 100% coupon: the customer churns but the subscription is not canceled.
        (at(2025, 4, 5, 12), REACTIVATED, "0/1", "10000/1"),
    ]


def _cancellation_with_feedback(layout: str) -> Scenario:
    acct = StripeAccount(layout, namespace="activity-feedback")  # type: ignore[arg-type]
    acct.price("price_Z", amount="25.00", nickname="Solo")
    customer = acct.customer("cus_Z", at=at(2025, 2, 1))
    acct.subscribe("sub_Z", customer, [Item("price_Z")], at=at(2025, 2, 1))
    acct.bill("sub_Z", at=at(2025, 2, 1), billing_reason="subscription_create")
    acct.cancel(
        "sub_Z",
        at=at(2025, 2, 20, 8),
        feedback="too_expensive",
        comment="We are a team of one now.",
    )
    return Scenario("feedback", acct.layout, acct.events, acct.backfill, {})


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_a_cancellation_carries_stripes_feedback_and_comment(
    engine: AsyncEngine, event_log: EventLog, layout: str
) -> None:
    await project(engine, event_log, _cancellation_with_feedback(layout))
    [canceled] = [r for r in await stream(engine, "cus_Z") if r["event_name"] == CANCELED]
    assert (
        canceled["occurred_at"],
        canceled["cancellation_reason"],
        canceled["cancellation_feedback"],
        canceled["cancellation_comment"],
    ) == (
        at(2025, 2, 20, 8),
        "cancellation_requested",
        "too_expensive",
        "We are a team of one now.",
    )


# --- identity ----------------------------------------------------------------------------------


async def test_the_identity_is_the_customers_email(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    await project(engine, event_log, ALL_SCENARIOS["S5"](OLD))
    assert {r["identity"] for r in await stream(engine, "cus_L")} == {"billing+l@example.com"}


def _without_email(scenario: Scenario, customer_id: str) -> Scenario:
    events = copy.deepcopy(scenario.events)
    for event in events:
        obj = event["data"]["object"]
        if obj.get("object") == "customer" and obj["id"] == customer_id:
            obj["email"] = None
    return Scenario(scenario.name, scenario.layout, events, scenario.backfill, {})


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_the_identity_is_the_customer_id_when_stripe_has_no_email(
    engine: AsyncEngine, event_log: EventLog, layout: str
) -> None:
    await project(engine, event_log, _without_email(ALL_SCENARIOS["S5"](layout), "cus_M"))
    assert {r["identity"] for r in await stream(engine, "cus_M")} == {"cus_M"}
    assert {r["identity"] for r in await stream(engine, "cus_L")} == {"billing+l@example.com"}


# --- a function of the set of events -------------------------------------------------------


def _all_rows(events: list[NewEvent]) -> list[dict[str, Any]]:
    by_customer: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in as_stored(events):
        if event.customer_id:
            by_customer[event.customer_id].append(event)
    rows = []
    for customer_id, customer_events in sorted(by_customer.items()):
        facts = read_customer_facts(ACCOUNT, customer_id, customer_events)
        rows += activity_rows(facts, derive_customer_history(facts, DEFAULT))
    return rows


@pytest.mark.parametrize("name", ["S3", "S5", "S8", "S9"])
def test_the_rows_do_not_depend_on_arrival_order_or_duplicates(name: str) -> None:
    events = ledger_events(ALL_SCENARIOS[name](BASIL))
    in_order = _all_rows(events)
    assert in_order
    for seed in range(3):
        rng = random.Random(seed)
        assert _all_rows(shuffled_with_duplicates(events, rng, duplicates=0.5)) == in_order


# --- export through the CLI --------------------------------------------------------------------


async def test_export_as_csv_through_the_cli(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    await event_log.append(ledger_events(ALL_SCENARIOS["S3"](OLD)))
    code, out, err = await invoke(
        database, "activity", "export", "--since", "2025-04-16", "--format", "csv"
    )
    assert code == 0, err or out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [
        (
            r["occurred_at"],
            r["event_name"],
            r["identity"],
            r["amount"],
            r["mrr_before"],
            r["mrr_after"],
            r["plan"],
        )
        for r in rows
    ] == [
        (
            "2025-04-16T00:00:00+00:00",
            UPGRADED,
            "billing+i@example.com",
            "",
            "100.00",
            "200.00",
            "Business",
        ),
        ("2025-04-16T00:00:00+00:00", BILLED, "billing+i@example.com", "50.00", "", "", "Business"),
        (
            "2025-05-01T00:00:00+00:00",
            DOWNGRADED,
            "billing+i@example.com",
            "",
            "200.00",
            "150.00",
            "Team",
        ),
        ("2025-05-01T01:00:00+00:00", BILLED, "billing+i@example.com", "150.00", "", "", "Team"),
    ]
    assert all(r["event_ids"].startswith('["evt_') for r in rows)
    assert {r["billing_months"] for r in rows if r["event_name"] == BILLED} == {"1"}


async def test_export_as_json_lines_through_the_cli(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    await event_log.append(ledger_events(ALL_SCENARIOS["S5"](BASIL)))
    code, out, err = await invoke(
        database,
        "activity",
        "export",
        "--since",
        "2025-07-05T12:00:00",
        "--account",
        ACCOUNT,
        "--format",
        "jsonl",
    )
    assert code == 0, err or out
    records = [json.loads(line) for line in out.splitlines()]
    assert [
        (r["occurred_at"], r["event_name"], r["subscription_id"], r["amount"]) for r in records
    ] == [
        ("2025-07-05T15:00:00+00:00", CANCELED, "sub_L1", None),
        ("2025-07-10T11:00:00+00:00", BILLED, "sub_L2", "60.00"),
        ("2025-07-20T15:00:00+00:00", CANCELED, "sub_L2", None),
    ]
    assert records[0]["cancellation_reason"] == "cancellation_requested"
    assert records[0]["identity"] == "billing+l@example.com"
    assert all(r["event_ids"] and r["event_ids"][0].startswith("evt_") for r in records)
