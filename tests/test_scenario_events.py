"""The scenario event streams (tests/support/scenarios.py) are well-formed Stripe events in both
field layouts, and their expected figures are well-formed data.

Whether the engine computes those figures is tested elsewhere; here only the input is checked.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from functools import cache
from typing import Any

import pytest

from ledger.envelope import Source, parse_event
from projections.stripe_fields import (
    Price,
    Tier,
    from_unix,
    read_balance_transaction,
    read_discount,
    read_invoice,
    read_object,
    read_subscription,
)
from simulator.stripe_account import BASIL, LAYOUTS, OLD
from tests.support.scenarios import (
    ALL_SCENARIOS,
    FIGURE_KEYS,
    MONEY_KEYS,
    RATE_KEYS,
    TEST_CLOCK_SCENARIOS,
    Scenario,
)
from tests.support.signing import encode

Json = dict[str, Any]

CASES = [
    pytest.param(name, layout, id=f"{name}-{layout}")
    for name in ALL_SCENARIOS
    for layout in LAYOUTS
]
ENVELOPE_KEYS = {
    "id",
    "object",
    "api_version",
    "created",
    "data",
    "livemode",
    "pending_webhooks",
    "request",
    "type",
}
SNAPSHOT_KEYS = {*ENVELOPE_KEYS, "stripe_ledger"}
# Objects that name their customer in `customer` (refunds, invoice payments and balance
# transactions do not, in these layouts).
CUSTOMER_OWNED = {"subscription", "invoice", "charge", "discount", "subscription_schedule"}
VARIANTS = {"default", "stripe_compat", "at_first_payment", "free_customer_handling_active"}
MONEY = re.compile(r"-?\d+\.\d{2}")
RATE = re.compile(r"-?\d+\.\d{4}")


@cache
def built(name: str, layout: str) -> Scenario:
    return ALL_SCENARIOS[name](layout)


def objects(scenario: Scenario, kind: str) -> Iterator[Json]:
    for event in scenario.events:
        obj: Json = event["data"]["object"]
        if obj["object"] == kind:
            yield obj


def latest(scenario: Scenario, kind: str) -> dict[str, Json]:
    """Each object of a kind in its last state (events repeat an object at every change)."""
    return {obj["id"]: obj for obj in objects(scenario, kind)}


def month(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m")


def money(cents: int) -> str:
    return str((Decimal(cents) / 100).quantize(Decimal("0.01")))


# --- envelopes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_every_event_has_a_unique_id_and_the_envelope_fields(name: str, layout: str) -> None:
    events = built(name, layout).events
    ids = [event["id"] for event in events]
    assert len(set(ids)) == len(ids)
    for event in events:
        assert set(event) == ENVELOPE_KEYS, event["type"]
        assert re.fullmatch(r"evt_[0-9a-f]{24}", event["id"])
        assert event["object"] == "event"
        assert event["api_version"] == layout
        assert isinstance(event["created"], int) and event["created"] > 0
        # Discounts are the one object here without a `livemode` of their own.
        assert event["livemode"] is False
        assert event["data"]["object"].get("livemode", False) is False
        assert event["pending_webhooks"] == 1
        assert set(event["request"]) == {"id", "idempotency_key"}
        assert isinstance(event["type"], str) and isinstance(event["data"]["object"], dict)


def test_event_ids_are_unique_across_every_scenario_and_layout() -> None:
    ids = [
        record["id"]
        for name in ALL_SCENARIOS
        for layout in LAYOUTS
        for record in (*built(name, layout).events, *built(name, layout).backfill)
    ]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_parse_event_accepts_each_event_with_its_routing_fields(name: str, layout: str) -> None:
    for event in built(name, layout).events:
        obj = event["data"]["object"]
        parsed = parse_event(encode(event), account="default", source=Source.WEBHOOK)
        assert (parsed.event_id, parsed.type, parsed.api_version) == (
            event["id"],
            event["type"],
            layout,
        )
        assert (parsed.object_type, parsed.object_id) == (obj["object"], obj["id"])
        assert parsed.created == from_unix(event["created"])
        if obj["object"] == "customer":
            assert parsed.customer_id == obj["id"]
        elif obj["object"] in CUSTOMER_OWNED:
            assert parsed.customer_id is not None
            assert parsed.customer_id == obj["customer"]
        else:
            assert parsed.customer_id is None


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_updated_events_and_only_they_carry_previous_attributes(name: str, layout: str) -> None:
    for event in built(name, layout).events:
        data = event["data"]
        if not event["type"].endswith(".updated"):
            assert "previous_attributes" not in data, event["type"]
            continue
        previous = data["previous_attributes"]
        assert previous, f"{event['type']} changes nothing"
        for key, value in previous.items():
            assert data["object"][key] != value, key


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_created_is_non_decreasing_within_each_object(name: str, layout: str) -> None:
    events = built(name, layout).events
    by_object: dict[str, list[int]] = defaultdict(list)
    for event in events:
        by_object[event["data"]["object"]["id"]].append(event["created"])
    for object_id, times in by_object.items():
        assert times == sorted(times), object_id
    # The stream as a whole is chronological too.
    assert [e["created"] for e in events] == sorted(e["created"] for e in events)


@pytest.mark.parametrize("name", list(TEST_CLOCK_SCENARIOS))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_test_clock_events_are_sent_in_wall_clock_time_10_seconds_apart(
    name: str, layout: str
) -> None:
    """As a test clock sends them: no event's `created` is one of the times its object
    states (start, period, trial, cancellation), which are the clock's simulated times."""
    events = built(name, layout).events
    sent = [e["created"] for e in events]
    assert sent == list(range(sent[0], sent[0] + 10 * len(sent), 10))
    for event in events:
        obj = event["data"]["object"]
        if obj["object"] != "subscription":
            continue
        sub = read_subscription(obj)
        assert sub.test_clock == f"clock_{name}"
        stated = {sub.start_date, sub.current_period_start, sub.trial_end, sub.ended_at}
        assert from_unix(event["created"]) not in stated, event["type"]


@pytest.mark.parametrize("name", list(ALL_SCENARIOS))
def test_building_a_scenario_twice_gives_the_same_events(name: str) -> None:
    first, second = ALL_SCENARIOS[name](BASIL), ALL_SCENARIOS[name](BASIL)
    assert (first.events, first.backfill) == (second.events, second.backfill)


# --- snapshot records -----------------------------------------------------------------------


def card_fee(amount: int) -> int:
    exact = Decimal(amount) * Decimal("0.029") + Decimal(30)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def test_card_fees_round_half_even() -> None:
    assert (card_fee(12000), card_fee(10000), card_fee(120000)) == (378, 320, 3510)
    assert card_fee(300) == 39  # 38.7 cents


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_snapshots_are_marked_backfill_records_in_stripes_envelope(name: str, layout: str) -> None:
    for record in built(name, layout).backfill:
        assert set(record) == SNAPSHOT_KEYS
        assert re.fullmatch(r"evt_snap_[0-9a-f]{24}", record["id"])
        assert (record["object"], record["type"]) == ("event", "balance_transaction.snapshot")
        assert (record["api_version"], record["livemode"]) == (layout, False)
        assert (record["pending_webhooks"], record["request"]) == (0, None)
        assert record["stripe_ledger"] == {"snapshot": True}
        assert record["created"] == record["data"]["object"]["created"]
        parsed = parse_event(encode(record), account="default", source=Source.BACKFILL)
        assert (parsed.source, parsed.object_type) == (Source.BACKFILL, "balance_transaction")


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_each_charge_and_refund_has_one_balance_transaction_snapshot(
    name: str, layout: str
) -> None:
    scenario = built(name, layout)
    snapshots = {
        txn.source: txn
        for txn in (read_balance_transaction(r["data"]["object"]) for r in scenario.backfill)
    }
    assert len(snapshots) == len(scenario.backfill)
    charges = {k: c for k, c in latest(scenario, "charge").items() if c["status"] == "succeeded"}
    refunds = latest(scenario, "refund")
    assert set(snapshots) == set(charges) | set(refunds)
    for charge_id, charge in charges.items():
        txn = snapshots[charge_id]
        assert (txn.id, txn.type) == (charge["balance_transaction"], "charge")
        assert (txn.amount, txn.fee) == (charge["amount"], card_fee(charge["amount"]))
        assert (txn.net, txn.created) == (charge["amount"] - txn.fee, from_unix(charge["created"]))
    for refund_id, refund in refunds.items():
        txn = snapshots[refund_id]
        assert (txn.id, txn.type) == (refund["balance_transaction"], "refund")
        assert (txn.amount, txn.fee, txn.net) == (-refund["amount"], 0, -refund["amount"])


# --- objects through projections.stripe_fields ----------------------------------------------


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_every_object_reads_through_stripe_fields(name: str, layout: str) -> None:
    scenario = built(name, layout)
    for record in (*scenario.events, *scenario.backfill):
        obj = record["data"]["object"]
        read = read_object(obj)
        assert read is not None, obj["object"]
        assert getattr(read, "id", None) == obj["id"]


def item_reading(price: Price, quantity: int | None) -> tuple[object, ...]:
    return (
        price.unit_amount,
        price.interval,
        price.interval_count,
        price.usage_type,
        price.billing_scheme,
        quantity,
    )


def per_unit(
    cents: int, interval: str, count: int = 1, quantity: int | None = 1, usage: str = "licensed"
) -> tuple[object, ...]:
    return (Fraction(cents), interval, count, usage, "per_unit", quantity)


# Each subscription's items as created: unit amount (cents), interval, count, usage, scheme,
# quantity; what SCENARIOS.md describes.
INTENDED_ITEMS: dict[str, dict[str, list[tuple[object, ...]]]] = {
    "S1": {
        "sub_A": [per_unit(5000, "month", quantity=3)],
        "sub_B": [per_unit(120000, "year")],
        "sub_C": [per_unit(3000, "month", 3)],
        "sub_D": [per_unit(1200, "week")],
        "sub_E": [per_unit(300, "day")],
        "sub_F": [per_unit(7000, "month")],
    },
    "S2": {
        "sub_G": [per_unit(10000, "month")],
        "sub_G2": [per_unit(10000, "month")],
        "sub_H": [per_unit(12000, "month")],
    },
    "S3": {"sub_I": [per_unit(10000, "month")]},
    "S4": {"sub_J": [per_unit(8000, "month")], "sub_K": [per_unit(2000, "month")]},
    "S5": {
        "sub_L1": [per_unit(4000, "month")],
        "sub_L2": [per_unit(6000, "month")],
        "sub_M": [per_unit(10000, "month")],
    },
    "S6": {
        "sub_N": [per_unit(10000, "month")],
        "sub_O": [per_unit(5000, "month")],
        "sub_P": [per_unit(24000, "year")],
    },
    "S6-annual": {"sub_Q": [per_unit(12000, "year")]},
    "S7": {"sub_S": [per_unit(10000, "month")], "sub_T": [per_unit(120000, "year")]},
    "S8": {
        "sub_X": [
            per_unit(3000, "month", quantity=2),
            per_unit(1, "month", quantity=None, usage="metered"),
        ]
    },
    "S9": {"sub_AB": [(None, "month", 1, "licensed", "tiered", 12)]},
    "TC1": {"sub_TC1": [per_unit(1000, "month")]},
    "TC2": {"sub_TC2": [per_unit(2500, "month")]},
    "TC3": {"sub_TC3": [per_unit(2000, "month")]},
}


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_subscription_items_read_with_the_intended_prices(name: str, layout: str) -> None:
    scenario = built(name, layout)
    created = {
        e["data"]["object"]["id"]: read_subscription(e["data"]["object"])
        for e in scenario.events
        if e["type"] == "customer.subscription.created"
    }
    readings = {
        sub_id: [item_reading(item.price, item.quantity) for item in sub.items]
        for sub_id, sub in created.items()
    }
    assert readings == INTENDED_ITEMS[name]
    for sub in created.values():
        assert sub.currency == "usd"
        assert all(item.current_period_end == sub.current_period_end for item in sub.items)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_graduated_tiers_read_from_the_price(layout: str) -> None:
    [sub] = latest(built("S9", layout), "subscription").values()
    price = read_subscription(sub).items[0].price
    assert price.tiers_mode == "graduated"
    assert price.tiers == (
        Tier(10, Fraction(1000), Fraction(0)),
        Tier(None, Fraction(800), Fraction(0)),
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_changed_items_read_with_their_new_price_and_quantity(layout: str) -> None:
    *_, last_i = (read_subscription(s) for s in objects(built("S3", layout), "subscription"))
    assert [i.price.unit_amount for i in last_i.items] == [Fraction(15000)]
    fewer = int(datetime(2025, 3, 10, 12, tzinfo=UTC).timestamp())
    for event in built("S9", layout).events:
        if event["type"].startswith("customer.subscription."):
            [item] = read_subscription(event["data"]["object"]).items
            assert item.quantity == (12 if event["created"] < fewer else 10)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tax_behaviour_and_line_tax_read_from_the_invoices(layout: str) -> None:
    scenario = built("S2", layout)
    paid = {
        inv.subscription: inv
        for inv in (read_invoice(i) for i in objects(scenario, "invoice"))
        if inv.status == "paid" and inv.amount_paid
    }
    h_line = paid["sub_H"].lines[0]
    assert (h_line.amount, h_line.tax_amount, h_line.tax_inclusive) == (12000, 2000, True)
    assert (paid["sub_H"].total, paid["sub_H"].tax) == (12000, 2000)
    g_line = paid["sub_G"].lines[0]
    assert (g_line.amount, g_line.tax_amount, g_line.tax_inclusive) == (10000, 2000, False)
    assert (paid["sub_G"].subtotal, paid["sub_G"].total, paid["sub_G"].tax) == (10000, 12000, 2000)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_discounts_carry_their_coupon_subscription_and_end(layout: str) -> None:
    scenario = built("S6", layout)
    created = [
        read_discount(e["data"]["object"])
        for e in scenario.events
        if e["type"] == "customer.discount.created"
    ]
    ending = datetime(2025, 10, 1, tzinfo=UTC)
    assert {d.subscription: (d.coupon_id, d.end) for d in created} == {
        "sub_N": ("TWENTY_FOREVER", None),
        "sub_O": ("TEN_OFF_2M", ending),
        "sub_P": ("FIRST_YEAR_FREE", None),
    }


# --- the two layouts ------------------------------------------------------------------------


def subscription_invoices(scenario: Scenario) -> Iterator[Json]:
    for invoice in objects(scenario, "invoice"):
        if invoice["billing_reason"] != "manual":
            yield invoice


@pytest.mark.parametrize("name", list(ALL_SCENARIOS))
def test_old_layout_has_invoice_subscription_and_no_parent(name: str) -> None:
    scenario = built(name, OLD)
    for invoice in subscription_invoices(scenario):
        assert invoice["subscription"].startswith("sub_") and "parent" not in invoice
        assert {"paid", "charge", "tax", "total_tax_amounts"} <= set(invoice)
        for line in invoice["lines"]["data"]:
            assert "parent" not in line and "pricing" not in line
            assert line["price"]["object"] == "price" and line["type"] in (
                "subscription",
                "invoiceitem",
            )
    for sub in objects(scenario, "subscription"):
        assert "discounts" not in sub and "discount" in sub
        assert isinstance(sub["current_period_start"], int)
    for charge in objects(scenario, "charge"):
        assert charge["invoice"].startswith("in_")
    assert not [e for e in scenario.events if e["type"].startswith("invoice_payment.")]


@pytest.mark.parametrize("name", list(ALL_SCENARIOS))
def test_basil_layout_has_parent_and_no_invoice_subscription(name: str) -> None:
    scenario = built(name, BASIL)
    for invoice in subscription_invoices(scenario):
        assert invoice["parent"]["subscription_details"]["subscription"].startswith("sub_")
        assert not {"subscription", "paid", "charge", "payment_intent", "tax"} & set(invoice)
        assert "total_taxes" in invoice
        for line in invoice["lines"]["data"]:
            assert "price" not in line and "plan" not in line and "tax_amounts" not in line
            assert isinstance(line["pricing"]["price_details"]["price"], str)
            assert line["parent"]["type"] in ("subscription_item_details", "invoice_item_details")
    for sub in objects(scenario, "subscription"):
        assert "discount" not in sub and isinstance(sub["discounts"], list)
        assert "current_period_start" not in sub
        assert all(isinstance(i["current_period_start"], int) for i in sub["items"]["data"])
    for charge in objects(scenario, "charge"):
        assert "invoice" not in charge


@pytest.mark.parametrize("name", list(ALL_SCENARIOS))
def test_basil_paid_invoices_have_an_invoice_payment(name: str) -> None:
    scenario = built(name, BASIL)
    payments = {p["invoice"]: p for p in objects(scenario, "invoice_payment")}
    charged = {c["payment_intent"]: c for c in objects(scenario, "charge") if c["paid"]}
    paid = {i["id"]: i for i in objects(scenario, "invoice") if i["status"] == "paid"}
    expected = {invoice_id for invoice_id, i in paid.items() if i["amount_paid"] > 0}
    assert set(payments) == expected
    for invoice_id, payment in payments.items():
        assert payment["status"] == "paid" and payment["amount_paid"] == paid[invoice_id]["total"]
        assert charged[payment["payment"]["payment_intent"]]["amount"] == payment["amount_paid"]


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_invoice_subscription_reads_the_same_in_both_layouts(name: str, layout: str) -> None:
    for raw in subscription_invoices(built(name, layout)):
        invoice = read_invoice(raw)
        assert invoice.subscription is not None and invoice.customer == raw["customer"]
        assert all(line.subscription == invoice.subscription for line in invoice.lines)


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_invoice_amounts_add_up(name: str, layout: str) -> None:
    for raw in objects(built(name, layout), "invoice"):
        invoice = read_invoice(raw)
        exclusive_tax = sum(line.tax_amount - line.inclusive_tax_amount for line in invoice.lines)
        discounts = sum(line.discount_amount for line in invoice.lines)
        assert invoice.subtotal == sum(line.amount for line in invoice.lines)
        assert invoice.total == (invoice.subtotal or 0) - discounts + exclusive_tax
        assert invoice.tax == sum(line.tax_amount for line in invoice.lines)
        if invoice.status == "paid":
            assert invoice.amount_paid == invoice.total and invoice.paid_at is not None


# --- the expected figures -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL_SCENARIOS))
def test_expected_figures_are_well_formed(name: str) -> None:
    scenario = built(name, BASIL)
    customers = {c["id"] for c in objects(scenario, "customer")}
    assert "default" in scenario.expected and set(scenario.expected) <= VARIANTS
    for expected in scenario.expected.values():
        for period, figures in expected.periods.items():
            assert re.fullmatch(r"\d{4}-\d{2}", period)
            assert set(figures) <= FIGURE_KEYS
            check_values(figures)
        for moment, figures in expected.snapshots.items():
            assert datetime.fromisoformat(moment).utcoffset() is not None
            check_values(figures)
        times = [m.at for m in expected.movements]
        assert times == sorted(times)
        for movement in expected.movements:
            assert movement.customer in customers and MONEY.fullmatch(movement.amount)
        assert set(expected.customer_mrr) <= customers
        assert all(MONEY.fullmatch(v) for v in expected.customer_mrr.values())


def check_values(figures: dict[str, object]) -> None:
    for key, value in figures.items():
        if value is None:
            continue
        if key in MONEY_KEYS:
            assert isinstance(value, str) and MONEY.fullmatch(value), key
        elif key in RATE_KEYS:
            assert isinstance(value, str) and RATE.fullmatch(value), key
        elif key == "subscriptions_by_status":
            assert isinstance(value, dict) and all(isinstance(n, int) for n in value.values())
        else:
            assert isinstance(value, int) and not isinstance(value, bool), key


def cash_by_month(scenario: Scenario) -> dict[str, dict[str, int]]:
    """Cash straight from the events: charges and refunds by their own dates, fees from the
    snapshots, tax and the line split of every charged invoice by its payment date."""
    cash: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for charge in latest(scenario, "charge").values():
        if charge["status"] == "succeeded":
            cash[month(charge["created"])]["gross_revenue"] += charge["amount"]
    for refund in latest(scenario, "refund").values():
        cash[month(refund["created"])]["refunds"] += refund["amount"]
    for record in scenario.backfill:
        txn = record["data"]["object"]
        cash[month(txn["created"])]["fees"] += txn["fee"]
    prices = {
        item.price.id: item.price
        for sub in objects(scenario, "subscription")
        for item in read_subscription(sub).items
    }
    for invoice in map(read_invoice, latest(scenario, "invoice").values()):
        if invoice.status != "paid" or not invoice.amount_paid or invoice.paid_at is None:
            continue
        figures = cash[invoice.paid_at.strftime("%Y-%m")]
        figures["tax_collected"] += invoice.tax
        for line in invoice.lines:
            # Basil lines name their price by id only: look it up on the subscription items.
            price = line.price or prices.get(line.price_id or "")
            if line.subscription_item is None:
                figures["one_time_revenue"] += line.amount
            elif price is not None and price.usage_type == "metered":
                figures["usage_revenue"] += line.amount
            else:
                figures["recurring_revenue"] += line.amount
    for figures in cash.values():
        figures["net_revenue"] = figures["gross_revenue"] - figures["refunds"]
        figures["net_volume"] = figures["net_revenue"] - figures["fees"]
    return cash


CASH_KEYS = (
    "gross_revenue",
    "refunds",
    "fees",
    "net_revenue",
    "net_volume",
    "tax_collected",
    "recurring_revenue",
    "usage_revenue",
    "one_time_revenue",
)


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_the_events_carry_the_cash_scenarios_md_states(name: str, layout: str) -> None:
    """Not the engine's figures: a plain sum over the events, so that a scenario's events and
    its stated cash figures cannot drift apart."""
    scenario = built(name, layout)
    cash = cash_by_month(scenario)
    for period, figures in scenario.expected["default"].periods.items():
        for key in CASH_KEYS:
            if key in figures:
                assert money(cash[period][key]) == figures[key], (period, key)
