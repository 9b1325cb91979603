"""A projection is a function of the set of events: any arrival order, any duplicates,
the same history. Checked on the pure derivation, where hypothesis can try many orders."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.envelope import NewEvent, Source, parse_event
from ledger.event_log import StoredEvent
from projections.customer_facts import read_customer_facts
from projections.customer_history import derive_customer_history
from projections.metric_settings import DEFAULT, STRIPE_COMPAT, MetricSettings
from projections.read_model_rows import rows_for
from simulator.stripe_account import BASIL, LAYOUTS, OLD, Item, StripeAccount
from tests.support.feeding import as_stored, ledger_events
from tests.support.scenarios import ALL_SCENARIOS, Scenario
from tests.support.signing import encode, fresh_id
from tests.support.stripe_fixtures import event_2020

_ARRIVAL_DEPENDENT = {"positions", "position", "first_seen"}


def delivered(events: list[NewEvent], order: list[int]) -> list[StoredEvent]:
    """The events in this arrival order, with the positions the ledger would give them."""
    return as_stored([events[i] for i in order])


def read_models(stored: list[StoredEvent], metric_settings: MetricSettings) -> dict[str, Any]:
    by_customer: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in stored:
        if event.customer_id:
            by_customer[event.customer_id].append(event)
    tables: dict[str, list[Any]] = defaultdict(list)
    for customer_id, events in sorted(by_customer.items()):
        facts = read_customer_facts("default", customer_id, events)
        history = derive_customer_history(facts, metric_settings)
        for table, rows in rows_for(facts, history).items():
            tables[table.name] += [
                sorted((k, v) for k, v in row.items() if k not in _ARRIVAL_DEPENDENT)
                for row in rows
            ]
    return {name: sorted(rows, key=repr) for name, rows in tables.items()}


SCENARIO_EVENTS: dict[tuple[str, str], list[NewEvent]] = {
    (name, layout): ledger_events(ALL_SCENARIOS[name](layout))
    for name in ("S2", "S4", "S5", "S6", "S8", "S9", "TC1", "TC2", "TC3")
    for layout in LAYOUTS
}
BASELINES: dict[tuple[tuple[str, str], MetricSettings], dict[str, Any]] = {
    (key, s): read_models(delivered(events, list(range(len(events)))), s)
    for key, events in SCENARIO_EVENTS.items()
    for s in (DEFAULT, STRIPE_COMPAT)
}


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[tuple[str, str], list[int], MetricSettings]:
    key = draw(st.sampled_from(sorted(SCENARIO_EVENTS)))
    n = len(SCENARIO_EVENTS[key])
    order = draw(st.permutations(range(n)))
    duplicates = draw(st.lists(st.integers(0, n - 1), max_size=n // 2))
    insert_at = draw(
        st.lists(st.integers(0, n), min_size=len(duplicates), max_size=len(duplicates))
    )
    arrival = list(order)
    for duplicate, where in zip(duplicates, insert_at, strict=True):
        arrival.insert(where, duplicate)
    return key, arrival, draw(st.sampled_from([DEFAULT, STRIPE_COMPAT]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals())
def test_any_permutation_with_duplicates_gives_identical_read_models(
    case: tuple[tuple[str, str], list[int], MetricSettings],
) -> None:
    key, arrival, metric_settings = case
    stored = delivered(SCENARIO_EVENTS[key], arrival)
    assert read_models(stored, metric_settings) == BASELINES[(key, metric_settings)]


def _same_second_activation(layout: str) -> list[NewEvent]:
    """A subscription created `incomplete` and made `active` within one second."""
    account = StripeAccount(layout)  # type: ignore[arg-type]
    start = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
    account.price("price_basic", amount="40.00")
    customer = account.customer("cus_TIE", at=start)
    account.subscribe("sub_TIE", customer, [Item("price_basic")], at=start, status="incomplete")
    account.set_status("sub_TIE", "active", at=start)
    return ledger_events(Scenario("tie", account.layout, account.events, [], {}))


def test_events_in_one_second_resolve_by_subscription_state_not_arrival() -> None:
    for layout in (OLD, BASIL):
        events = _same_second_activation(layout)
        subscription_events = [e for e in events if e.object_type == "subscription"]
        assert len({e.created for e in subscription_events}) == 1
        for order in (list(range(len(events))), list(reversed(range(len(events))))):
            tables = read_models(delivered(events, order), DEFAULT)
            [interval] = tables["customer_mrr"]
            assert dict(interval)["mrr_exact"] == "4000/1", layout
            assert dict(interval)["state"] == "active"


def test_a_late_cancellation_lands_at_its_ended_at_not_its_arrival() -> None:
    account = StripeAccount(OLD)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    account.price("price_basic", amount="40.00")
    customer = account.customer("cus_LATE", at=start)
    account.subscribe("sub_LATE", customer, [Item("price_basic")], at=start)
    account.cancel("sub_LATE", at=start + timedelta(days=10))
    events = ledger_events(Scenario("late", account.layout, account.events, [], {}))
    # The deletion is delivered first, the creation days later: history is the same.
    order = sorted(
        range(len(events)), key=lambda i: events[i].type != "customer.subscription.deleted"
    )
    tables = read_models(delivered(events, order), DEFAULT)
    movements = sorted(dict(m)["effective_at"] for m in tables["mrr_movements"])
    assert movements == [start, start + timedelta(days=10)]


def test_a_customers_newest_email_wins_whatever_the_arrival_order() -> None:
    older, newer = (
        fresh_id(event_2020("customer_updated")),
        fresh_id(event_2020("customer_updated")),
    )
    newer["created"] = older["created"] + 60
    older["data"]["object"]["email"], newer["data"]["object"]["email"] = (
        "old@acme.io",
        "new@acme.io",
    )
    events = [
        parse_event(encode(e), account="default", source=Source.WEBHOOK) for e in (older, newer)
    ]
    for order in ([0, 1], [1, 0]):
        stored = delivered(events, order)
        facts = read_customer_facts("default", stored[0].customer_id or "", stored)
        assert facts.customer is not None and facts.customer.email == "new@acme.io"


def test_an_unstated_change_on_a_test_clock_never_moves_a_stated_cancellation() -> None:
    """A quantity change states no time of its own: its `created` is the test clock's wall
    clock, months after the simulated `ended_at` that follows it. It is dated between the
    stated times around it, so the churn stays at `ended_at` in any arrival order."""
    account = StripeAccount(BASIL, namespace="TC-unstated")
    start, renewal, end = (datetime(2023, m, d, tzinfo=UTC) for m, d in ((9, 1), (10, 1), (10, 15)))
    account.price("price_seat", amount="10.00")
    customer = account.customer("cus_UNSTATED", at=start)
    account.subscribe("sub_UNSTATED", customer, [Item("price_seat", 2)], at=start)
    account.renew("sub_UNSTATED", at=renewal)
    account.update_items("sub_UNSTATED", at=renewal + timedelta(days=3), quantity=3)
    account.cancel("sub_UNSTATED", at=end)
    sent = int(datetime(2023, 12, 5, tzinfo=UTC).timestamp())
    for i, event in enumerate(account.events):
        event["created"] = sent + 10 * i
    events = ledger_events(Scenario("unstated", account.layout, account.events, [], {}))
    for order in (list(range(len(events))), list(reversed(range(len(events))))):
        tables = read_models(delivered(events, order), DEFAULT)
        movements = sorted(
            (dict(m)["effective_at"], dict(m)["kind"], dict(m)["amount_exact"])
            for m in tables["mrr_movements"]
        )
        assert movements == [(start, "new", "2000/1"), (end, "churn", "2000/1")]


def test_renewals_a_test_clock_sends_in_one_second_follow_their_periods_not_their_ids() -> None:
    """Advancing a test clock by months sends every renewal within one wall-clock second;
    their periods order them, whatever their event ids say."""
    account = StripeAccount(OLD, namespace="TC-burst")
    start, november = datetime(2023, 9, 1, tzinfo=UTC), datetime(2023, 11, 1, tzinfo=UTC)
    account.price("price_basic", amount="10.00")
    account.price("price_plus", amount="20.00")
    customer = account.customer("cus_BURST", at=start)
    account.subscribe("sub_BURST", customer, [Item("price_basic")], at=start)
    account.renew("sub_BURST", at=datetime(2023, 10, 1, tzinfo=UTC))
    account.renew("sub_BURST", at=november, price="price_plus")  # a schedule's next phase
    account.renew("sub_BURST", at=datetime(2023, 12, 1, tzinfo=UTC))
    sent = int(datetime(2023, 12, 5, tzinfo=UTC).timestamp())
    for i, event in enumerate(account.events):
        event["created"] = sent
        event["id"] = f"evt_{len(account.events) - i:024d}"  # ids run against time
    events = ledger_events(Scenario("burst", account.layout, account.events, [], {}))
    for order in (list(range(len(events))), list(reversed(range(len(events))))):
        tables = read_models(delivered(events, order), DEFAULT)
        movements = sorted(
            (dict(m)["effective_at"], dict(m)["kind"], dict(m)["amount_exact"])
            for m in tables["mrr_movements"]
        )
        assert movements == [(start, "new", "1000/1"), (november, "expansion", "1000/1")]
