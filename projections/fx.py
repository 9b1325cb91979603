"""Converting money to the reporting currency with the daily rate table.

A figure at an instant uses the latest rate on or before that day. A figure that would
need a rate older than any in the table raises MissingRate naming it, never a guess.
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.schema import fx_rates
from projections.money import minor_unit_exponent


class MissingRate(LookupError):
    def __init__(self, currency: str, reporting: str, day: date) -> None:
        super().__init__(
            f"no {currency.upper()}->{reporting.upper()} rate on or before {day.isoformat()}: "
            f"add one with `stripe-ledger fx import rates.csv` (columns date,currency,rate)"
        )
        self.currency, self.reporting, self.day = currency, reporting, day


class RateBook:
    """The rates into one reporting currency, loaded once per computation."""

    def __init__(self, reporting: str, rates: Iterable[tuple[str, date, Fraction]]) -> None:
        self.reporting = reporting.lower()
        self._days: dict[str, list[date]] = {}
        self._rates: dict[str, list[Fraction]] = {}
        for currency, day, rate in sorted(rates):
            self._days.setdefault(currency, []).append(day)
            self._rates.setdefault(currency, []).append(rate)

    def rate(self, currency: str, on: date) -> Fraction:
        currency = currency.lower()
        if currency == self.reporting:
            return Fraction(1)
        days = self._days.get(currency, [])
        index = bisect.bisect_right(days, on) - 1
        if index < 0:
            raise MissingRate(currency, self.reporting, on)
        return self._rates[currency][index]

    def convert(self, amount_minor: Fraction | int, currency: str, at: datetime | date) -> Fraction:
        """Minor units of `currency` into minor units of the reporting currency, exactly."""
        if currency.lower() == self.reporting:
            return Fraction(amount_minor)
        day = at.date() if isinstance(at, datetime) else at
        shift = minor_unit_exponent(self.reporting) - minor_unit_exponent(currency)
        return Fraction(amount_minor) * self.rate(currency, day) * Fraction(10) ** shift


async def load_rates(conn: AsyncConnection, reporting: str) -> RateBook:
    f = fx_rates.c
    rows = await conn.execute(
        select(f.currency, f.day, f.rate).where(f.reporting_currency == reporting.lower())
    )
    return RateBook(reporting, ((r.currency, r.day, Fraction(r.rate)) for r in rows))


def read_rates_csv(path: Path) -> list[tuple[date, str, str]]:
    """Rows of a `date,currency,rate` file, checked; raises ValueError naming the bad line."""
    found: list[tuple[date, str, str]] = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or {"date", "currency", "rate"} - set(reader.fieldnames):
            raise ValueError(f"{path}: the header must be date,currency,rate")
        for line, row in enumerate(reader, start=2):
            try:
                day = date.fromisoformat(row["date"].strip())
                currency = row["currency"].strip().lower()
                rate = Decimal(row["rate"].strip())
            except (ValueError, InvalidOperation):
                raise ValueError(
                    f"{path}:{line}: expected YYYY-MM-DD,currency,decimal rate"
                ) from None
            if len(currency) != 3 or not currency.isalpha() or rate <= 0:
                raise ValueError(f"{path}:{line}: currency must be 3 letters and rate positive")
            found.append((day, currency, str(rate)))
    return found


async def store_rates(
    conn: AsyncConnection, reporting: str, rows: Iterable[tuple[date, str, str]]
) -> int:
    f = fx_rates.c
    values = [
        {"reporting_currency": reporting.lower(), "currency": c, "day": d, "rate": r}
        for d, c, r in rows
    ]
    for value in values:  # a re-import replaces a day's rate
        await conn.execute(
            delete(fx_rates).where(
                f.reporting_currency == value["reporting_currency"],
                f.currency == value["currency"],
                f.day == value["day"],
            )
        )
    if values:
        await conn.execute(fx_rates.insert(), values)
    return len(values)
