"""The periods a user asks for, as half-open UTC ranges [start, end)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta


class PeriodError(ValueError):
    pass


def month_start(value: datetime | date) -> datetime:
    return datetime(value.year, value.month, 1, tzinfo=UTC)


def add_months(value: datetime, months: int) -> datetime:
    index = value.year * 12 + value.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    # Clamp the day: one month after 03-31 is 04-30.
    last_day = (datetime(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return value.replace(year=year, month=month, day=min(value.day, last_day))


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
    if match := re.fullmatch(r"(\d{4})-(\d{2})", text):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise PeriodError(f"no month {month} in {text!r}")
        start = datetime(year, month, 1, tzinfo=UTC)
        return start, add_months(start, 1)
    if match := re.fullmatch(r"(\d{4})-Q([1-4])", text, flags=re.IGNORECASE):
        start = datetime(int(match[1]), 3 * int(match[2]) - 2, 1, tzinfo=UTC)
        return start, add_months(start, 3)
    if match := re.fullmatch(r"\d{4}", text):
        start = datetime(int(text), 1, 1, tzinfo=UTC)
        return start, add_months(start, 12)
    raise PeriodError(
        f"unknown period {text!r}: use YYYY-MM, YYYY-Qn, YYYY or "
        "last-day|last-week|last-month|last-quarter|last-year"
    )


def parse_instant(text: str) -> datetime:
    """An ISO date or timestamp; a date means its first instant; naive means UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"{text!r} is not an ISO date or timestamp") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


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
    return [(max(m, first), min(add_months(m, 1), last)) for m in months(first, last)]
