"""The monthly metrics table, kept current by the runner, says what the CLI says."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.event_log import EventLog
from ledger.schema import MONTHLY_COUNTS, MONTHLY_MONEY, MONTHLY_RATES, monthly_metrics
from projections.periods import add_months, month_start
from projections.runner import ProjectionRunner
from simulator.stripe_account import BASIL
from tests.support.cli_runner import invoke_json
from tests.support.databases import TestDatabase
from tests.support.feeding import ACCOUNT, ledger_events
from tests.support.scenarios import ALL_SCENARIOS


def end_of_story(name: str) -> datetime:
    """The first month after both the scenario's last event and its last stated period."""
    scenario = ALL_SCENARIOS[name](BASIL)
    last_event = max(datetime.fromtimestamp(e["created"], UTC) for e in scenario.events)
    stated = [
        datetime.strptime(p, "%Y-%m").replace(tzinfo=UTC)
        for p in scenario.expected["default"].periods
    ]
    return add_months(month_start(max([last_event, *stated])), 1)


@pytest.mark.parametrize("name", sorted(ALL_SCENARIOS))
async def test_every_month_of_the_table_matches_metrics_json(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog, name: str
) -> None:
    scenario = ALL_SCENARIOS[name](BASIL)
    await event_log.append(ledger_events(scenario))
    now = end_of_story(name)
    await ProjectionRunner(engine).catch_up(ACCOUNT, now=now)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(monthly_metrics)
                .where(monthly_metrics.c.account == ACCOUNT)
                .order_by(monthly_metrics.c.month)
            )
        ).all()
    assert rows, "the runner kept no monthly rows"
    assert rows[-1].month == now.date()  # up to and including the current month
    for row in rows:
        document = await invoke_json(database, "metrics", "--period", row.month.strftime("%Y-%m"))
        for key in MONTHLY_MONEY + MONTHLY_RATES + MONTHLY_COUNTS:
            assert getattr(row, key) == document[key], (row.month, key)
        assert orjson.loads(row.subscriptions_by_status) == document["subscriptions_by_status"]


async def test_a_late_event_refreshes_the_months_it_changes(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    scenario = ALL_SCENARIOS["S5"](BASIL)
    events = ledger_events(scenario)
    deletion = next(
        e for e in events if e.type == "customer.subscription.deleted" and "sub_L2" in e.payload
    )
    runner = ProjectionRunner(engine)
    now = datetime(2025, 9, 1, tzinfo=UTC)
    await event_log.append([e for e in events if e is not deletion])
    await runner.catch_up(ACCOUNT, now=now)
    await event_log.append([deletion])  # the July cancellation arrives in late August
    await runner.catch_up(ACCOUNT, now=now)
    async with engine.connect() as conn:
        july = (
            await conn.execute(
                select(monthly_metrics).where(
                    monthly_metrics.c.account == ACCOUNT,
                    monthly_metrics.c.month == datetime(2025, 7, 1).date(),
                )
            )
        ).one()
    assert (july.churn, july.mrr_end) == ("60.00", "100.00")
