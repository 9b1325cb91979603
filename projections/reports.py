"""The metrics document `stripe-ledger metrics --json` prints and `/api/v1/metrics` serves:
one function, so the two never disagree."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.accounts import all_accounts
from ledger.settings import Settings
from projections import metrics as figures
from projections.account_config import load_config
from projections.as_reported import as_reported
from projections.fx import load_rates
from projections.runner import ProjectionRunner


async def metric_documents(
    engine: AsyncEngine,
    settings: Settings,
    account: str,
    *,
    ranges: Sequence[tuple[datetime, datetime]] = (),
    instant: datetime | None = None,
    reported: bool = False,
    frozen_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The figures of each range (or a snapshot at `instant`), restated or as reported, each
    labelled with the account's mode. Raises MissingRate when a conversion has no rate."""
    await ProjectionRunner(engine, reporting_currency=settings.reporting_currency).catch_up(account)
    documents: list[dict[str, Any]]
    if reported and instant is None:
        documents = [
            await as_reported(
                engine,
                account,
                start,
                end,
                frozen_at=frozen_at,
                reporting_currency=settings.reporting_currency,
            )
            for start, end in ranges
        ]
    else:
        async with engine.connect() as conn:
            config = await load_config(conn, account, settings.reporting_currency)
            rates = await load_rates(conn, config.reporting_currency)
            if instant is not None:
                documents = [await figures.snapshot(conn, account, instant, config, rates)]
            else:
                documents = [
                    await figures.period(conn, account, start, end, config, rates)
                    for start, end in ranges
                ]
    known = (await all_accounts(engine, settings)).get(account)
    mode = known.mode.value if known is not None and known.mode is not None else None
    # Test-mode figures are labelled wherever they are shown.
    return [{**document, "mode": mode} for document in documents]
