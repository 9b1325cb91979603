"""Scheduled reconciliation (`serve --reconcile hourly|daily|weekly`): replay over a trailing
window in the background, so a missed webhook is repaired without anyone remembering."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from cli.replay_command import credentials
from ledger.logs import get_logger
from ledger.settings import ConfigError, Mode, Settings
from replay.client import StripeApi
from replay.run import Replay

log = get_logger("reconcile")

EVERY = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
# Each run covers three intervals back: a run that failed or was skipped (a restart, an
# outage) is covered by the next ones.
WINDOW_INTERVALS = 3


async def reconcile_once(
    engine: AsyncEngine, settings: Settings, accounts: Sequence[str], window: timedelta
) -> None:
    now = datetime.now(UTC)
    for account in list(accounts):
        try:
            key, mode = await credentials(engine, settings, account)
        except ConfigError:
            continue  # no API key for this account: webhooks only
        api = StripeApi(
            key,
            base_url=settings.stripe_api_base,
            requests_per_second=settings.replay_requests_per_second,
        )
        try:
            report = await Replay(
                engine,
                api,
                account=account,
                since=now - window,
                until=now,
                livemode=mode is Mode.LIVE,
                reporting_currency=settings.reporting_currency,
            ).run()
        except Exception as exc:  # the next round tries again; the server keeps serving
            log.error("reconcile_failed", account=account, error=type(exc).__name__)
            continue
        log.info(
            "reconciled",
            account=account,
            fetched=report.fetched,
            appended=report.appended,
            complete=report.complete,
        )


def reconciler(
    settings: Settings, every: timedelta, window: timedelta | None = None
) -> Callable[
    [AsyncEngine, Sequence[str]], contextlib.AbstractAsyncContextManager[Callable[[], None]]
]:
    """A companion for the webhook app (see webhooks.app.Companion)."""

    @asynccontextmanager
    async def companion(
        engine: AsyncEngine, accounts: Sequence[str]
    ) -> AsyncIterator[Callable[[], None]]:
        async def rounds() -> None:
            while True:
                await reconcile_once(engine, settings, accounts, window or every * WINDOW_INTERVALS)
                await asyncio.sleep(every.total_seconds())

        task = asyncio.create_task(rounds(), name="reconcile")
        try:
            yield lambda: None  # commits do not concern it
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return companion
