"""As-reported figures: what the ledger would have said at a freeze time.

Every derived fact has a known time: the `created` of the webhook event (or of our
snapshot record, which is when it was fetched) that revealed it, or, for Stripe events a
backfill recovered, when we stored them. As-reported figures re-derive the account from
the events known by the freeze time, in a throwaway copy, with the same code as the
restated figures; a later period's report then shows how its opening MRR differs from
what the previous period reported (`opening_restatement`).
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import create_engine, write_transaction
from ledger.migrate import upgrade
from ledger.schema import account_settings, fx_rates, ledger_events
from projections import metrics
from projections.account_config import load_config
from projections.fx import load_rates
from projections.runner import ProjectionRunner


def known_by(frozen_at: datetime) -> Any:
    """Events the ledger knew at `frozen_at`."""
    e = ledger_events.c
    recovered = and_(e.source == "backfill", e.type.not_like("%.snapshot"))
    return or_(
        and_(~recovered, e.created <= frozen_at), and_(recovered, e.received_at <= frozen_at)
    )


async def _copy_known(
    source: AsyncEngine, target: AsyncEngine, account: str, frozen_at: datetime
) -> None:
    async with source.connect() as conn:
        events = [
            dict(row._mapping)
            for row in await conn.execute(
                select(ledger_events)
                .where(ledger_events.c.account == account, known_by(frozen_at))
                .order_by(ledger_events.c.position)
            )
        ]
        settings = [dict(r._mapping) for r in await conn.execute(select(account_settings))]
        rates = [dict(r._mapping) for r in await conn.execute(select(fx_rates))]
    async with write_transaction(target) as conn:
        for table, rows in (
            (ledger_events, events),
            (account_settings, settings),
            (fx_rates, rates),
        ):
            if rows:
                await conn.execute(table.insert(), rows)


async def as_reported(
    engine: AsyncEngine,
    account: str,
    start: datetime,
    end: datetime,
    *,
    frozen_at: datetime | None = None,
    reporting_currency: str = "usd",
) -> dict[str, Any]:
    """The period's figures from the facts known at `frozen_at` (default: the period's
    end), with `opening_restatement`: its opening MRR minus the closing MRR the previous
    period reported at its own end."""
    freeze = frozen_at or end
    with tempfile.TemporaryDirectory(prefix="stripe-ledger-as-reported-") as folder:
        known_then = await _derive(
            engine, Path(folder) / "then.sqlite3", account, freeze, reporting_currency
        )
        reported_before = await _derive(
            engine, Path(folder) / "before.sqlite3", account, start, reporting_currency
        )
        try:
            document = await _figures(known_then, account, start, end, reporting_currency)
            previous = await _opening(reported_before, account, start, reporting_currency)
        finally:
            await known_then.dispose()
            await reported_before.dispose()
    document["as_reported"] = True
    document["frozen_at"] = freeze.isoformat()
    # Both are decimal strings of the same currency: their difference keeps the scale.
    document["opening_restatement"] = f"{Decimal(document['mrr_start']) - Decimal(previous):f}"
    return document


async def _derive(
    source: AsyncEngine, path: Path, account: str, frozen_at: datetime, reporting_currency: str
) -> AsyncEngine:
    target = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(target)
    await _copy_known(source, target, account, frozen_at)
    await ProjectionRunner(target, reporting_currency=reporting_currency).rebuild(account)
    return target


async def _figures(
    engine: AsyncEngine, account: str, start: datetime, end: datetime, reporting_currency: str
) -> dict[str, Any]:
    async with engine.connect() as conn:
        config = await load_config(conn, account, reporting_currency)
        rates = await load_rates(conn, config.reporting_currency)
        return await metrics.period(conn, account, start, end, config, rates)


async def _opening(engine: AsyncEngine, account: str, at: datetime, reporting_currency: str) -> str:
    async with engine.connect() as conn:
        config = await load_config(conn, account, reporting_currency)
        rates = await load_rates(conn, config.reporting_currency)
        return str((await metrics.snapshot(conn, account, at, config, rates))["mrr"])
