"""The periods a user asks for, as half-open UTC ranges [start, end)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Final


class PeriodError(ValueError):
    pass


# The calendar a request may name: nothing Stripe records precedes the Unix epoch, and
# ending at 9999-01-01 leaves the last month's end (and the arithmetic on it) within what
# `datetime` can hold; 9999-12 would end in the year 10000.
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9999, 1, 1, tzinfo=UTC)
_BOUNDS: Final = f"between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"
# A by-month request computes one document a month: 50 years of them at most.
MAX_MONTHS: Final = 600


def month_start(value: datetime | date) -> datetime:
    return datetime(value.year, value.month, 1, tzinfo=UTC)


def add_months(value: datetime, months: int) -> datetime:
    index = value.year * 12 + value.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise PeriodError(f"{value:%Y-%m} {months:+d} months is outside the calendar")
    # Clamp the day: one month after 03-31 is 04-30.
    last_day = calendar.monthrange(year, month)[1]
    return value.replace(year=year, month=month, day=min(value.day, last_day))


def check_range(start: datetime, end: datetime) -> None:
    """Refuse a range reaching outside the calendar requests may name."""
    if start < EARLIEST or end > LATEST:
        raise PeriodError(f"periods must lie {_BOUNDS}")


def parse_month(text: str, name: str = "month") -> datetime:
    """`YYYY-MM` as its first instant, within the calendar requests may name."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if match is None:
        raise PeriodError(f"{name} must be a month, YYYY-MM")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        raise PeriodError(f"no month {month} in {text!r}")
    return _start(year, month, text)


def _start(year: int, month: int, text: str) -> datetime:
    # Checked before building the datetime (year 0 cannot even be built); any month, quarter
    # or year starting from 1970 to 9998 ends by LATEST.
    if not EARLIEST.year <= year < LATEST.year:
        raise PeriodError(f"{text!r} is outside the calendar: periods must lie {_BOUNDS}")
    return datetime(year, month, 1, tzinfo=UTC)


def months(start: datetime, end: datetime) -> list[datetime]:
    """The calendar months that [start, end) touches, by their first instant."""
    found, current = [], month_start(start)
    while current < end:
        found.append(current)
        current = add_months(current, 1)
    return found


_RELATIVE: dict[str, Callable[[datetime], datetime]] = {
    "last-day": lambda now: now - timedelta(days=1),
    "last-week": lambda now: now - timedelta(days=7),
    "last-month": lambda now: add_months(now, -1),
    "last-quarter": lambda now: add_months(now, -3),
    "last-year": lambda now: add_months(now, -12),
}


def parse_period(text: str, now: datetime) -> tuple[datetime, datetime]:
    """`2025-01`, `2025-Q1`, `2025`, or `last-day|week|month|quarter|year` (ending now)."""
    if text in _RELATIVE:
        return _RELATIVE[text](now), now
    if re.fullmatch(r"\d{4}-\d{2}", text):
        start = parse_month(text, "period")
        return start, add_months(start, 1)
    if match := re.fullmatch(r"(\d{4})-Q([1-4])", text, flags=re.IGNORECASE):
        start = _start(int(match[1]), 3 * int(match[2]) - 2, text)
        return start, add_months(start, 3)
    if match := re.fullmatch(r"\d{4}", text):
        start = _start(int(text), 1, text)
        return start, add_months(start, 12)
    raise PeriodError(
        f"unknown period {text!r}: use YYYY-MM, YYYY-Qn, YYYY or "
        "last-day|last-week|last-month|last-quarter|last-year"
    )


def parse_instant(text: str) -> datetime:
    """An ISO date or timestamp; a date means its first instant; naive means UTC."""
    try:
        parsed = datetime.fromisoformat(text)
        instant = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        raise PeriodError(f"{text!r} is not an ISO date or timestamp") from None
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC instant
        instant = EARLIEST - timedelta(days=1)
    if not EARLIEST <= instant <= LATEST:
        raise PeriodError(f"{text!r} is outside the calendar: instants must lie {_BOUNDS}")
    return instant


def requested_ranges(
    period: str | None, start: str | None, end: str | None, by_month: bool, now: datetime
) -> list[tuple[datetime, datetime]]:
    """The ranges a request names: a `period`, or `start`..`end`, whole or by month."""
    if period is not None:
        first, last = parse_period(period, now)
    elif start is not None and end is not None:
        first, last = parse_instant(start), parse_instant(end)
        if last <= first:
            raise PeriodError("'to' must be after 'from'")
    else:
        raise PeriodError("give a period, from and to, or as_of")
    if not by_month:
        return [(first, last)]
    touched = (last.year - first.year) * 12 + last.month - first.month
    if touched + (last > month_start(last)) > MAX_MONTHS:
        raise PeriodError(f"by_month covers at most {MAX_MONTHS} months")
    return [(max(m, first), min(add_months(m, 1), last)) for m in months(first, last)]
