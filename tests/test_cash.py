"""The cash read models (projections.cash) against SCENARIOS.md's cash figures, in both field
layouts, computed straight from StoredEvents routed to their customers as the runner would."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson
import pytest

from ledger.envelope import NewEvent, Source
from ledger.event_log import StoredEvent
from ledger.schema import CASH_READ_MODELS, disputes, invoices, payments, refunds
from projections.cash import cash_rows
from projections.routing import refers_to
from simulator.stripe_account import LAYOUTS, OLD, SNAPSHOT_TYPE
from tests.support.feeding import as_stored, ledger_events, shuffled_with_duplicates
from tests.support.scenarios import ALL_SCENARIOS
from tests.support.stripe_fixtures import resource

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)
Row = dict[str, Any]
Tables = dict[str, list[Row]]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@cache
def scenario_events(name: str, layout: str) -> tuple[NewEvent, ...]:
    return tuple(ledger_events(ALL_SCENARIOS[name](layout)))


def by_customer(events: Sequence[StoredEvent]) -> dict[str, list[StoredEvent]]:
    """Each customer's events, routed ones included (a refund's balance transaction reaches
    its customer through the refund, then the charge), whatever the arrival order. Events
    whose chain reaches no known object stay unrouted, as in the runner."""
    owners = {e.object_id: e.customer_id for e in events if e.customer_id and e.object_id}
    groups: dict[str, list[StoredEvent]] = defaultdict(list)
    pending = []
    for event in events:
        if event.customer_id:
            groups[event.customer_id].append(event)
        else:
            pending.append(event)
    while pending:
        waiting = []
        for event in pending:
            owner = owners.get(refers_to(event) or "")
            if owner is None:
                waiting.append(event)
                continue
            groups[owner].append(event)
            if event.object_id:
                owners[event.object_id] = owner
        if len(waiting) == len(pending):
            break
        pending = waiting
    return groups


def tables(events: Sequence[StoredEvent]) -> Tables:
    out: Tables = defaultdict(list)
    for customer_id, own in sorted(by_customer(events).items()):
        for table, rows in cash_rows("default", customer_id, own).items():
            out[table.name] += rows
    return out


def cash(name: str, layout: str) -> Tables:
    return tables(as_stored(scenario_events(name, layout)))


def invoice_of(result: Tables, customer_id: str, created: datetime | None = None) -> Row:
    [row] = [
        r
        for r in result["invoices"]
        if r["customer_id"] == customer_id and created in (None, r["created"])
    ]
    return row


def history(result: Tables, invoice_id: str) -> list[tuple[str, datetime]]:
    rows = [r for r in result["invoice_status_history"] if r["invoice_id"] == invoice_id]
    return [(r["status"], r["effective_at"]) for r in rows]


# --- shape ----------------------------------------------------------------------------------


def test_every_cash_table_is_present_even_without_events() -> None:
    rows = cash_rows("default", "cus_NONE", [])
    assert rows == {table: [] for table in CASH_READ_MODELS}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rows_have_exactly_the_table_columns_but_surrogate_ids(layout: str) -> None:
    events = as_stored(scenario_events("S7", layout))
    for customer_id, own in by_customer(events).items():
        for table, rows in cash_rows("default", customer_id, own).items():
            columns = {c.name for c in table.c} - {"id"}
            assert all(set(row) == columns for row in rows), table.name
            assert all(row["customer_id"] == customer_id for row in rows)


# --- S1: gross ------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s1_gross_is_the_sum_of_paid_charges(layout: str) -> None:
    result = cash("S1", layout)
    assert sum(p["amount"] for p in result["payments"] if p["paid"]) == 140_100
    [failed] = [p for p in result["payments"] if not p["paid"]]
    assert (failed["customer_id"], failed["status"], failed["fee"]) == ("cus_F", "failed", None)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_paid_charge_names_the_invoice_it_paid(layout: str) -> None:
    result = cash("S1", layout)
    charged = {
        (r["customer_id"], r["invoice_id"])
        for r in result["invoices"]
        if r["status"] == "paid" and r["amount_paid"] > 0
    }
    assert {(p["customer_id"], p["invoice_id"]) for p in result["payments"] if p["paid"]} == charged


# --- S2: fees, tax, a failed then paid invoice ----------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s2_fees_come_from_the_balance_transactions(layout: str) -> None:
    result = cash("S2", layout)
    assert sum(p["fee"] for p in result["payments"] if p["paid"]) == 1134
    assert all(p["balance_transaction_id"] for p in result["payments"] if p["paid"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s2_tax_collected_is_the_tax_of_paid_invoices(layout: str) -> None:
    result = cash("S2", layout)
    assert sum(r["tax"] for r in result["invoices"] if r["status"] == "paid") == 6000


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s2_tax_inclusive_line_counts_as_recurring_before_tax(layout: str) -> None:
    invoice = invoice_of(cash("S2", layout), "cus_H")
    assert (invoice["total"], invoice["tax"], invoice["recurring_amount"]) == (12000, 2000, 10000)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s2_failed_then_paid_invoice_history_ends_paid_on_its_payment_date(layout: str) -> None:
    result = cash("S2", layout)
    invoice = invoice_of(result, "cus_G2", created=utc(2025, 3, 19, 9))
    assert history(result, invoice["invoice_id"]) == [
        ("draft", utc(2025, 3, 19, 9)),
        ("open", utc(2025, 3, 19, 9)),
        ("paid", utc(2025, 3, 25, 9)),
    ]
    assert (invoice["status"], invoice["paid_at"]) == ("paid", utc(2025, 3, 25, 9))
    attempts = [p for p in result["payments"] if p["customer_id"] == "cus_G2"]
    assert sorted((p["paid"], p["paid_at"]) for p in attempts) == [
        (False, utc(2025, 3, 19, 9)),
        (True, utc(2025, 3, 25, 9)),
    ]
    assert {p["invoice_id"] for p in attempts} == {invoice["invoice_id"]}


# --- S7: a refund, a voided invoice ---------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s7_refund_is_dated_on_the_refund_date_with_no_fee(layout: str) -> None:
    result = cash("S7", layout)
    [refund] = result["refunds"]
    [charge] = [p for p in result["payments"] if p["customer_id"] == "cus_T"]
    assert (refund["customer_id"], refund["charge_id"]) == ("cus_T", charge["charge_id"])
    assert (refund["amount"], refund["status"], refund["fee"]) == (120_000, "succeeded", 0)
    assert refund["refunded_at"] == utc(2025, 11, 20, 12, 1)
    assert (charge["paid_at"], charge["amount_refunded"]) == (utc(2025, 11, 1, 9), 120_000)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s7_fees_sum_over_charges_and_refunds(layout: str) -> None:
    result = cash("S7", layout)
    november = [p for p in result["payments"] if p["paid_at"] >= utc(2025, 11, 1)]
    fees = sum(p["fee"] for p in november) + sum(r["fee"] for r in result["refunds"])
    assert fees == 3830


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s7_voided_one_off_invoice_history_is_open_then_void(layout: str) -> None:
    result = cash("S7", layout)
    invoice = invoice_of(result, "cus_U")
    assert history(result, invoice["invoice_id"]) == [
        ("draft", utc(2025, 11, 5, 10)),
        ("open", utc(2025, 11, 5, 10, 30)),
        ("void", utc(2025, 11, 6, 10)),
    ]
    assert (invoice["status"], invoice["paid_at"], invoice["subscription_id"]) == (
        "void",
        None,
        None,
    )
    assert (invoice["one_time_amount"], invoice["recurring_amount"]) == (50_000, 0)


def test_a_refund_known_only_from_its_charge_still_gets_a_row() -> None:
    # The old layout nests refunds in `charge.refunds`; drop the refund's own event.
    events = [e for e in as_stored(scenario_events("S7", OLD)) if e.type != "refund.created"]
    own = [e for e in events if e.customer_id == "cus_T" or e.type == SNAPSHOT_TYPE]
    [refund] = cash_rows("default", "cus_T", own)[refunds]
    assert (refund["amount"], refund["fee"], refund["refunded_at"]) == (
        120_000,
        0,
        utc(2025, 11, 20, 12, 1),
    )
    assert refund["event_id"] in {e.event_id for e in events if e.type == "charge.refunded"}


# --- S8: the line split ---------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s8_splits_invoices_into_recurring_usage_and_one_time(layout: str) -> None:
    result = cash("S8", layout)

    def split(created: datetime) -> tuple[int, int, int]:
        row = invoice_of(result, "cus_X", created=created)
        return row["recurring_amount"], row["usage_amount"], row["one_time_amount"]

    assert split(utc(2026, 1, 1)) == (6000, 0, 20_000)
    assert split(utc(2026, 2, 1)) == (6000, 50_000, 0)


# --- order ----------------------------------------------------------------------------------


def without_positions(result: Tables) -> dict[str, list[Any]]:
    return {
        name: sorted(
            (sorted((k, v) for k, v in r.items() if k != "position") for r in rows), key=repr
        )
        for name, rows in result.items()
    }


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["S1", "S2", "S3", "S7", "S8"])
def test_shuffled_and_duplicated_events_give_identical_rows(name: str, layout: str) -> None:
    events = list(scenario_events(name, layout))
    baseline = without_positions(tables(as_stored(events)))
    for seed in range(5):
        arrival = shuffled_with_duplicates(events, random.Random(seed), duplicates=0.3)
        assert without_positions(tables(as_stored(arrival))) == baseline, seed


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_snapshot_arriving_before_its_charge_still_gives_the_fee(layout: str) -> None:
    events = list(scenario_events("S2", layout))
    snapshots_first = sorted(events, key=lambda e: e.type != SNAPSHOT_TYPE)
    assert snapshots_first[0].type == SNAPSHOT_TYPE
    payments = tables(as_stored(snapshots_first))["payments"]
    assert sum(p["fee"] for p in payments if p["paid"]) == 1134


@pytest.mark.parametrize("layout", LAYOUTS)
def test_without_its_snapshot_a_charge_has_no_fee_and_its_own_date(layout: str) -> None:
    events = [e for e in scenario_events("S2", layout) if e.type != SNAPSHOT_TYPE]
    paid = [p for p in tables(as_stored(events))["payments"] if p["paid"]]
    assert {p["fee"] for p in paid} == {None}
    assert utc(2025, 3, 25, 9) in {p["paid_at"] for p in paid}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_invoice_events_in_one_second_resolve_by_status_not_arrival(layout: str) -> None:
    # S1's first invoices are created, finalized and paid within one second.
    events = list(scenario_events("S1", layout))
    for arrival in (events, events[::-1]):
        invoice = invoice_of(tables(as_stored(arrival)), "cus_A")
        assert invoice["status"] == "paid"


# --- disputes -------------------------------------------------------------------------------


def _event(obj: dict[str, Any], event_type: str, created: datetime, n: int) -> StoredEvent:
    document = {
        "id": f"evt_dispute_{n}",
        "object": "event",
        "type": event_type,
        "created": int(created.timestamp()),
        "data": {"object": obj},
    }
    return StoredEvent(
        position=n,
        account="default",
        event_id=f"evt_dispute_{n}",
        type=event_type,
        object_type=obj["object"],
        object_id=obj["id"],
        customer_id=None,
        livemode=False,
        api_version=OLD,
        created=created,
        received_at=RECEIVED,
        source=Source.WEBHOOK,
        payload=orjson.dumps(document).decode(),
    )


def dispute_events() -> list[StoredEvent]:
    opened, lost = utc(2025, 6, 1), utc(2025, 6, 20)
    withdrawal = resource("balance_transaction")
    withdrawal.update(id="txn_withdrawal", amount=-1000, fee=1500, net=-2500, type="adjustment")
    dispute = resource("dispute")
    withdrawal["source"] = dispute["id"]
    dispute.update(status="needs_response", created=int(opened.timestamp()))
    dispute["balance_transactions"] = [withdrawal]
    closed = {**dispute, "status": "lost"}
    other = {**withdrawal, "id": "txn_other", "fee": 200}
    return [
        _event(dispute, "charge.dispute.created", opened, 1),
        _event(closed, "charge.dispute.closed", lost, 2),
        _event(closed, "charge.dispute.updated", lost + timedelta(days=1), 3),
        _event(withdrawal, SNAPSHOT_TYPE, opened, 4),
        _event(other, SNAPSHOT_TYPE, opened, 5),
    ]


def test_a_lost_dispute_closes_when_first_shown_lost_and_counts_each_fee_once() -> None:
    for arrival in (dispute_events(), dispute_events()[::-1]):
        [row] = cash_rows("default", "cus_D", arrival)[disputes]
        assert (row["status"], row["lost"], row["closed_at"]) == ("lost", True, utc(2025, 6, 20))
        assert (row["fee"], row["amount"], row["created"]) == (1700, 1000, utc(2025, 6, 1))


def test_an_open_dispute_is_not_lost() -> None:
    [row] = cash_rows("default", "cus_D", dispute_events()[:1])[disputes]
    assert (row["status"], row["lost"], row["closed_at"], row["fee"]) == (
        "needs_response",
        False,
        None,
        1500,
    )


def test_an_invoice_preview_without_id_gives_no_row() -> None:
    upcoming = resource("invoice")
    del upcoming["id"]
    event = _event({**upcoming, "id": None}, "invoice.upcoming", utc(2025, 6, 1), 1)
    assert cash_rows("default", "cus_D", [event])[invoices] == []


def test_a_fee_settled_in_another_currency_is_stored_in_the_charge_currency() -> None:
    charge = resource("charge")
    charge.update(currency="eur", amount=1000, balance_transaction="txn_eur", paid=True)
    txn = resource("balance_transaction")
    txn.update(id="txn_eur", currency="usd", amount=1234, fee=66, exchange_rate=1.234)
    txn.update(source=charge["id"], type="charge", created=int(utc(2025, 6, 2).timestamp()))
    events = [
        _event(charge, "charge.succeeded", utc(2025, 6, 1), 1),
        _event(txn, SNAPSHOT_TYPE, utc(2025, 6, 2), 2),
    ]
    [row] = cash_rows("default", "cus_EU", events)[payments]
    # 0.66 USD at 1.234 USD per EUR is 0.5348... EUR.
    assert (row["currency"], row["fee"], row["paid_at"]) == ("eur", 53, utc(2025, 6, 2))
