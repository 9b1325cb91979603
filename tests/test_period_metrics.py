"""Every figure SCENARIOS.md states, through `stripe-ledger metrics --json`, on both
engines and both field layouts, with the settings each variant names."""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import write_transaction
from ledger.event_log import EventLog
from projections.account_config import store_setting
from simulator.stripe_account import LAYOUTS
from tests.support.cli_runner import invoke_json
from tests.support.databases import TestDatabase
from tests.support.feeding import ACCOUNT, chunks, ledger_events, shuffled_with_duplicates
from tests.support.scenarios import ALL_SCENARIOS, Expected

CASES = [
    (name, layout, variant)
    for name, build in ALL_SCENARIOS.items()
    for layout in LAYOUTS
    for variant, expected in build(layout).expected.items()
    if expected.periods or expected.snapshots
]


async def store_variant(engine: AsyncEngine, expected: Expected) -> None:
    async with write_transaction(engine) as conn:
        for name, value in expected.settings.items():
            await store_setting(conn, ACCOUNT, name, value)


def stated(document: dict[str, Any], figures: dict[str, object]) -> dict[str, object]:
    """The document's values for the figures stated; statuses compared where non-zero."""
    found: dict[str, object] = {}
    for key in figures:
        value = document[key]
        if key == "subscriptions_by_status":
            value = {status: n for status, n in value.items() if n}
        found[key] = value
    return found


@pytest.mark.parametrize(("name", "layout", "variant"), CASES)
async def test_scenario_figures_through_the_cli(
    database: TestDatabase,
    engine: AsyncEngine,
    event_log: EventLog,
    name: str,
    layout: str,
    variant: str,
) -> None:
    scenario = ALL_SCENARIOS[name](layout)
    expected = scenario.expected[variant]
    await store_variant(engine, expected)
    rng = random.Random(f"{name}{layout}{variant}")
    for batch in chunks(shuffled_with_duplicates(ledger_events(scenario), rng), rng):
        await event_log.append(batch)
    for period, figures in expected.periods.items():
        document = await invoke_json(database, "metrics", "--period", period)
        assert stated(document, figures) == figures, period
        assert_invariants(document)
    for period, others in expected.other_figures.items():
        document = await invoke_json(database, "metrics", "--period", period)
        assert stated(document, others) == others, period
    for instant, figures in expected.snapshots.items():
        document = await invoke_json(database, "metrics", "--as-of", instant)
        assert stated(document, {k: v for k, v in figures.items() if k in document}) == {
            k: v for k, v in figures.items() if k in document
        }, instant


def assert_invariants(document: dict[str, Any]) -> None:
    def money(key: str) -> Fraction:
        return Fraction(document[key])

    roll_forward = (
        money("mrr_start") + money("new") + money("expansion") + money("reactivation")
        - money("contraction") - money("churn") + money("fx_adjustment")
    )  # fmt: skip
    assert roll_forward == money("mrr_end")
    assert money("fx_adjustment") == 0  # one currency: every change is a movement
    assert money("arr_end") == 12 * money("mrr_end")
    if document["nrr"] is not None:
        assert 0 <= Fraction(document["grr"]) <= Fraction(document["nrr"])
        assert Fraction(document["grr"]) <= 1
    for rate in ("customer_churn_rate", "customer_churn_rate_stripe30"):
        if document[rate] is not None:
            assert 0 <= Fraction(document[rate]) <= 1
    if document["quick_ratio"] is not None:
        assert Fraction(document["quick_ratio"]) >= 0
