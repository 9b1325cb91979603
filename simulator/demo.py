"""The demo: a simulated account in a ledger of its own, its projections built, and the
figures of its last twelve complete months, computed as `metrics --json` computes them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.migrate import upgrade
from projections import metrics as figures
from projections.account_config import load_config
from projections.fx import load_rates
from projections.periods import add_months, month_start
from projections.runner import ProjectionRunner
from simulator.fx_rates import store_simulated_rates
from simulator.life import AccountLife, end_of
from simulator.outputs import Delivered, append_to_ledger

SHOWN_MONTHS = 12


@dataclass(frozen=True, slots=True)
class DemoHistory:
    customers: int
    months: int
    seed: int
    start: datetime
    end: datetime


def history_ending_today(customers: int, months: int, seed: int, now: datetime) -> DemoHistory:
    """A history that starts `months` months before today and runs up to today (UTC)."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = add_months(today, -months)
    return DemoHistory(customers, months, seed, start, end_of(months, start))


async def build_demo(
    engine: AsyncEngine,
    history: DemoHistory,
    account: str,
    *,
    progress: Callable[[int], None] = lambda _: None,
) -> Delivered:
    """Fill an empty ledger with the simulated account, its exchange rates into USD and
    its projections."""
    await upgrade(engine)
    life = AccountLife(history.customers, history.months, history.seed, start=history.start)

    def counted() -> Any:
        for count, record in enumerate(life, start=1):
            if count % 5000 == 0:
                progress(count)
            yield record

    delivered = await append_to_ledger(counted(), engine, account)
    await store_simulated_rates(engine, history.start.date(), history.end.date(), history.seed)
    await ProjectionRunner(engine, reporting_currency="usd").catch_up(account, now=history.end)
    return delivered


async def last_months(
    engine: AsyncEngine, account: str, end: datetime, count: int = SHOWN_MONTHS
) -> list[dict[str, Any]]:
    """The period figures of the `count` complete months before `end`'s month."""
    last = month_start(end)
    async with engine.connect() as conn:
        config = await load_config(conn, account, "usd")
        rates = await load_rates(conn, config.reporting_currency)
        return [
            await figures.period(
                conn, account, add_months(last, -n), add_months(last, 1 - n), config, rates
            )
            for n in range(count, 0, -1)
        ]
