"""The MRR engine against SCENARIOS.md: every scenario, in both field layouts, on both
engines, delivered shuffled and with duplicates, built incrementally as events arrive."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from fractions import Fraction

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.event_log import EventLog
from projections.money import major_units
from projections.queries import movements_between, mrr_at
from projections.runner import ProjectionRunner
from simulator.stripe_account import LAYOUTS
from tests.support.feeding import (
    ACCOUNT,
    chunks,
    dump_read_models,
    ledger_events,
    settings_for,
    shuffled_with_duplicates,
)
from tests.support.scenarios import ALL_SCENARIOS

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
CASES = [
    (name, layout, variant)
    for name, build in ALL_SCENARIOS.items()
    for layout in LAYOUTS
    for variant in build(layout).expected
]


def month_bounds(period: str) -> tuple[datetime, datetime]:
    year, month = map(int, period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def total_mrr(engine: AsyncEngine, at: datetime) -> str:
    async with engine.connect() as conn:
        by_currency = await mrr_at(conn, ACCOUNT, at)
    return major_units(sum(by_currency.values(), Fraction(0)), "usd")


@pytest.mark.parametrize(("name", "layout", "variant"), CASES)
async def test_scenario_movements_and_mrr_hold_in_any_arrival_order(
    engine: AsyncEngine, event_log: EventLog, name: str, layout: str, variant: str
) -> None:
    scenario = ALL_SCENARIOS[name](layout)
    expected = scenario.expected[variant]
    rng = random.Random(f"{name}-{layout}-{variant}")
    runner = ProjectionRunner(engine, settings_for(expected), batch_size=7)
    for batch in chunks(shuffled_with_duplicates(ledger_events(scenario), rng), rng):
        await event_log.append(batch)
        if rng.random() < 0.3:  # the runner sometimes catches up mid-delivery
            await runner.catch_up(ACCOUNT)
    await runner.catch_up(ACCOUNT)

    async with engine.connect() as conn:
        movements = await movements_between(conn, ACCOUNT, *EVER)
    got = sorted(
        (m.effective_at, m.customer_id, m.kind, major_units(m.amount, m.currency))
        for m in movements
    )
    assert got == sorted((m.at, m.customer, m.kind, m.amount) for m in expected.movements)
    for period, figures in expected.periods.items():
        start, end = month_bounds(period)
        if "mrr_start" in figures:
            assert await total_mrr(engine, start) == figures["mrr_start"], period
        if "mrr_end" in figures:
            assert await total_mrr(engine, end) == figures["mrr_end"], period
        if "arr_end" in figures:
            async with engine.connect() as conn:
                arr = 12 * sum((await mrr_at(conn, ACCOUNT, end)).values(), Fraction(0))
            assert major_units(arr, "usd") == figures["arr_end"], period
    for instant, figures in expected.snapshots.items():
        if "mrr" in figures:
            assert await total_mrr(engine, datetime.fromisoformat(instant)) == figures["mrr"]


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_s1_customer_mrr_at_the_end_of_january(
    engine: AsyncEngine, event_log: EventLog, layout: str
) -> None:
    scenario = ALL_SCENARIOS["S1"](layout)
    await event_log.append(ledger_events(scenario))
    await ProjectionRunner(engine).catch_up(ACCOUNT)
    end = datetime(2025, 2, 1, tzinfo=UTC)
    async with engine.connect() as conn:
        for customer, amount in scenario.expected["default"].customer_mrr.items():
            mrr = sum((await mrr_at(conn, ACCOUNT, end, customer)).values(), Fraction(0))
            assert major_units(mrr, "usd") == amount, customer


@pytest.mark.parametrize("name", ["S3", "S5", "S8", "S9"])
async def test_a_rebuild_reproduces_the_incremental_tables_exactly(
    engine: AsyncEngine, event_log: EventLog, name: str
) -> None:
    scenario = ALL_SCENARIOS[name](LAYOUTS[1])
    rng = random.Random(name)
    runner = ProjectionRunner(engine, batch_size=5)
    for batch in chunks(shuffled_with_duplicates(ledger_events(scenario), rng), rng):
        await event_log.append(batch)
        await runner.catch_up(ACCOUNT)
    incremental = await dump_read_models(engine)
    position = await runner.position(ACCOUNT)
    await runner.rebuild(ACCOUNT)
    assert await dump_read_models(engine) == incremental
    assert await runner.position(ACCOUNT) == position
    assert incremental["mrr_movements"]


async def test_every_movement_points_back_to_ledger_events(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    await event_log.append(ledger_events(ALL_SCENARIOS["S5"](LAYOUTS[0])))
    await ProjectionRunner(engine).catch_up(ACCOUNT)
    stored = {e.event_id: e.position for e in await event_log.read_after(0, limit=10_000)}
    async with engine.connect() as conn:
        movements = await movements_between(conn, ACCOUNT, *EVER)
    assert movements
    for movement in movements:
        assert movement.event_ids
        assert [stored[e] for e in movement.event_ids] == list(movement.positions)
