"""Settings per METRICS.md, stored per account; changing one rebuilds what depends on it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.event_log import EventLog
from projections.periods import PeriodError, parse_period
from simulator.stripe_account import OLD
from tests.support.cli_runner import invoke, invoke_json
from tests.support.databases import TestDatabase
from tests.support.feeding import ledger_events
from tests.support.scenarios import ALL_SCENARIOS


async def test_changing_a_setting_rebuilds_the_figures(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    await event_log.append(ledger_events(ALL_SCENARIOS["S4"](OLD)))
    before = await invoke_json(database, "metrics", "--period", "2025-05")
    code, _out, err = await invoke(database, "settings", "set", "churn_recognition", "scheduled")
    assert code == 0, err
    after = await invoke_json(database, "metrics", "--period", "2025-05")
    assert (before["churn"], after["churn"]) == ("0.00", "80.00")
    code, shown, _ = await invoke(database, "settings", "show")
    assert "scheduled" in shown and "stored" in shown


async def test_the_stripe_compat_profile_reproduces_stripes_dashboard(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    await event_log.append(ledger_events(ALL_SCENARIOS["S8"](OLD)))
    await invoke(database, "settings", "set", "profile", "stripe_compat")
    february = await invoke_json(database, "metrics", "--period", "2026-02")
    assert (february["contraction"], february["mrr_end"]) == ("0.00", "60.00")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("activation", "whenever", "activation must be one of at_start, at_first_payment"),
        ("subtract_once", "maybe", "subtract_once must be true or false"),
        ("delinquency_recovery_window_days", "-3", "cannot be negative"),
        ("colour", "blue", "unknown setting 'colour'"),
        ("reporting_currency", "euro", "3-letter ISO code"),
    ],
)
async def test_a_bad_setting_is_refused_and_changes_nothing(
    database: TestDatabase, engine: AsyncEngine, name: str, value: str, message: str
) -> None:
    code, _, err = await invoke(database, "settings", "set", "--", name, value)
    assert code == 2
    assert message in err


NOW = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2025-01", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)),
        ("2025-12", datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("2025-Q1", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)),
        ("2025", datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("last-month", datetime(2026, 10, 22, 15, 30, tzinfo=UTC), NOW),
        ("last-week", datetime(2026, 11, 15, 15, 30, tzinfo=UTC), NOW),
        ("last-year", datetime(2025, 11, 22, 15, 30, tzinfo=UTC), NOW),
    ],
)
def test_periods_are_half_open_utc_ranges(text: str, start: datetime, end: datetime) -> None:
    assert parse_period(text, NOW) == (start, end)


@pytest.mark.parametrize("text", ["2025-13", "2025-Q5", "yesterday", "25-01"])
def test_an_unknown_period_is_refused(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(text, NOW)
