"""The projection worker beside the webhook endpoint: woken after each commit, it brings the
read models up to date without ever delaying a webhook's answer, then evaluates the alerts
of every account whose figures may have moved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.logs import get_logger
from projections.alerts import evaluate_alerts
from projections.metric_settings import MetricSettings
from projections.runner import ProjectionRunner

log = get_logger("projections")

# Also run on a timer: a wake-up lost to a crash, or events appended by another process
# (a second server, a backfill), are picked up within this many seconds.
_POLL_SECONDS = 5.0
_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
# Figures over a period ending now move with the clock alone (a week's churn leaves the
# window), so alerts are also evaluated this often when no event arrives.
_ALERT_RECHECK_SECONDS = 3600.0


@asynccontextmanager
async def projection_worker(
    engine: AsyncEngine,
    accounts: Sequence[str],
    settings: MetricSettings | None = None,
    reporting_currency: str = "usd",
) -> AsyncIterator[Callable[[], None]]:
    """`settings` None: each account's stored settings (see account_config)."""
    runner = ProjectionRunner(engine, settings, reporting_currency=reporting_currency)
    wake = asyncio.Event()
    wake.set()  # catch up once at start-up
    # Alerts run in a task of their own: a slow webhook must not hold back the read models.
    alerts_due = asyncio.Event()
    due_accounts: set[str] = set()

    async def run() -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), _POLL_SECONDS)
            wake.clear()
            try:
                for account in accounts:
                    processed = await runner.catch_up(account)
                    if processed:
                        log.info("projections_advanced", account=account, events=processed)
                        due_accounts.add(account)
                        alerts_due.set()
                failures = 0
            except Exception as exc:  # keep the worker alive; the ledger still has everything
                delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
                failures += 1
                log.error("projections_failed", error=type(exc).__name__, retry_in=delay)
                await asyncio.sleep(delay)
                wake.set()

    async def evaluate() -> None:
        while True:
            try:
                await asyncio.wait_for(alerts_due.wait(), _ALERT_RECHECK_SECONDS)
            except TimeoutError:
                due_accounts.update(accounts)
            alerts_due.clear()
            due = sorted(due_accounts)
            due_accounts.clear()
            for account in due:
                try:
                    await evaluate_alerts(
                        engine,
                        account,
                        datetime.now(UTC),
                        reporting_currency=reporting_currency,
                        settings=settings,
                    )
                except Exception as exc:
                    # Never stops the worker; the next event or the hourly recheck tries again.
                    log.error("alerts_failed", account=account, error=type(exc).__name__)

    tasks = [
        asyncio.create_task(run(), name="projection-worker"),
        asyncio.create_task(evaluate(), name="alert-evaluator"),
    ]
    try:
        yield wake.set
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
