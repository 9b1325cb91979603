"""A backfill may find only a subscription's latest state; its own business times still
tell its past (live until `ended_at`, trialing until `trial_end`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.envelope import NewEvent
from projections.customer_facts import read_customer_facts
from projections.customer_history import derive_customer_history
from projections.metric_settings import DEFAULT
from replay.snapshots import snapshot_record
from simulator.stripe_account import BASIL, OLD, Item, StripeAccount
from tests.test_mrr_order_independence import delivered

START = datetime(2025, 1, 1, tzinfo=UTC)
FETCHED = datetime(2025, 6, 1, tzinfo=UTC)


def only_the_final_state(account: StripeAccount, subscription_id: str) -> list[NewEvent]:
    final = account.object(subscription_id)
    return [
        snapshot_record(
            "default", final, fetched_at=FETCHED, api_version=account.layout, livemode=False
        )
    ]


def movements(events: list[NewEvent]) -> list[tuple[datetime, str, int]]:
    stored = delivered(events, list(range(len(events))))
    facts = read_customer_facts("default", stored[0].customer_id or "", stored)
    history = derive_customer_history(facts, DEFAULT)
    return [(m.at, m.kind, int(m.amount)) for m in history.movements]


def test_a_canceled_subscription_known_only_by_its_snapshot_counted_until_it_ended() -> None:
    for layout in (OLD, BASIL):
        account = StripeAccount(layout)
        account.price("price_m", amount="50.00")
        customer = account.customer("cus_BF", at=START)
        account.subscribe("sub_BF", customer, [Item("price_m")], at=START)
        ended = START + timedelta(days=45)
        account.cancel("sub_BF", at=ended)
        assert movements(only_the_final_state(account, "sub_BF")) == [
            (START, "new", 5000),
            (ended, "churn", 5000),
        ]


def test_a_snapshot_after_a_trial_counts_from_the_trials_end() -> None:
    account = StripeAccount(BASIL)
    account.price("price_m", amount="50.00")
    customer = account.customer("cus_TR", at=START)
    trial_end = START + timedelta(days=14)
    account.subscribe("sub_TR", customer, [Item("price_m")], at=START, trial_end=trial_end)
    account.set_status("sub_TR", "active", at=trial_end)
    assert movements(only_the_final_state(account, "sub_TR")) == [(trial_end, "new", 5000)]
