"""The monthly metrics table: one row per account and calendar month, every figure of
`stripe-ledger metrics --json`, refreshed by the runner from the first month a change
touched up to the current month."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.logs import get_logger
from ledger.schema import MONTHLY_COUNTS, MONTHLY_MONEY, MONTHLY_RATES, customers, monthly_metrics
from projections.account_config import AccountConfig
from projections.fx import MissingRate, load_rates
from projections.metrics import period
from projections.periods import add_months, month_start, months

log = get_logger("projections")


async def first_month(conn: AsyncConnection, account: str) -> datetime | None:
    c = customers.c
    first = await conn.scalar(select(func.min(c.first_seen)).where(c.account == account))
    return month_start(first) if first is not None else None


async def refresh_months(
    conn: AsyncConnection,
    account: str,
    config: AccountConfig,
    since: datetime | None,
    now: datetime | None = None,
) -> int:
    """Recompute every month from the one holding `since` (None: from the first) to now."""
    first = await first_month(conn, account)
    if first is None:
        return 0
    start = max(first, month_start(since)) if since is not None else first
    end = add_months(month_start(now or datetime.now(UTC)), 1)
    rates = await load_rates(conn, config.reporting_currency)
    m = monthly_metrics.c
    await conn.execute(delete(monthly_metrics).where(m.account == account, m.month >= start.date()))
    rows = []
    for month in months(start, end):
        try:
            figures = await period(conn, account, month, add_months(month, 1), config, rates)
        except MissingRate as missing:  # the month stays absent until the rate is imported
            log.warning("monthly_metrics_missing_rate", account=account, reason=str(missing))
            continue
        rows.append(_row(account, month, figures))
    if rows:
        await conn.execute(monthly_metrics.insert(), rows)
    return len(rows)


def _row(account: str, month: datetime, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "account": account,
        "month": month.date(),
        "currency": figures["currency"],
        **{name: figures[name] for name in MONTHLY_MONEY + MONTHLY_RATES},
        **{name: figures[name] for name in MONTHLY_COUNTS},
        "subscriptions_by_status": orjson.dumps(figures["subscriptions_by_status"]).decode(),
        "computed_at": datetime.now(UTC),
    }
