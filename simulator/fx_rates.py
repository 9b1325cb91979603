"""Daily exchange rates for a simulated account's currencies, so its figures can be reported
in one currency. A seeded random walk around plausible levels: not market data."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import write_transaction
from projections.fx import store_rates

# One unit of the currency in US dollars, where the walk starts.
_LEVELS: Final = {"eur": Decimal("1.08"), "gbp": Decimal("1.27")}
_DAILY_STEP: Final = 0.003


def daily_rates(first: date, last: date, seed: int) -> list[tuple[date, str, str]]:
    """`(day, currency, rate)` rows into USD for every day from `first` to `last`, as
    `fx import` stores them."""
    rng = random.Random(f"fx-{seed}")
    rows: list[tuple[date, str, str]] = []
    for currency, level in _LEVELS.items():
        rate, day = level, first
        while day <= last:
            rows.append((day, currency, str(rate)))
            step = Decimal(str(round(rng.gauss(0, _DAILY_STEP), 4)))
            rate = max(Decimal("0.5"), (rate * (1 + step)).quantize(Decimal("0.000001")))
            day += timedelta(days=1)
    return rows


async def store_simulated_rates(engine: AsyncEngine, first: date, last: date, seed: int) -> None:
    """The daily rates into USD from `first` to `last`, stored as `fx import` stores them:
    without them, months with EUR or GBP customers have no figures in USD."""
    async with write_transaction(engine) as conn:
        await store_rates(conn, "usd", daily_rates(first, last, seed))
