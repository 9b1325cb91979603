"""Opening the ledger for appends: at start-up, and again later if the database could not
be used then.

The group committer starts only once the database is reachable and its schema current
(the served app applies pending migrations itself first). Until then every delivery is
answered 503, since the committer is not running, and /readyz gives the reason. A task
tries again every few seconds, so a server started during an outage, or on a database it
cannot open, serves normally once that is fixed, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.group_commit import GroupCommitter
from ledger.logs import get_logger
from ledger.migrate import is_current, upgrade
from ledger.readiness import MIGRATIONS_PENDING, describe

log = get_logger("webhooks")

RETRY_SECONDS = 2.0


class LedgerGate:
    """`reason` is None once the committer runs; before, why it does not yet."""

    def __init__(self, engine: AsyncEngine, committer: GroupCommitter, *, migrate: bool) -> None:
        self._engine = engine
        self._committer = committer
        self._migrate = migrate
        self.reason: str | None = "the ledger is not open yet"
        self._reported: str | None = None

    async def try_open(self) -> bool:
        try:
            if self._migrate:
                await upgrade(self._engine)
            elif not await is_current(self._engine):
                return self._closed(MIGRATIONS_PENDING)
        except Exception as exc:  # any failure to use the database: try again later
            return self._closed(describe(exc))
        await self._committer.start()
        if self._reported is not None:
            log.info("ledger_open", after=self._reported)
        self.reason = None
        return True

    def _closed(self, reason: str) -> bool:
        if reason != self._reported:  # once per distinct reason, not every few seconds
            log.warning("ledger_not_open", reason=reason, retry_every=RETRY_SECONDS)
            self._reported = reason
        self.reason = reason
        return False

    async def keep_trying(self) -> None:
        while True:
            if await self.try_open():
                return
            await asyncio.sleep(RETRY_SECONDS)


@asynccontextmanager
async def opened(gate: LedgerGate) -> AsyncIterator[LedgerGate]:
    """The gate after one attempt; if that failed, attempts go on in the background for as
    long as the context lasts."""
    if await gate.try_open():
        yield gate
        return
    retrying = asyncio.create_task(gate.keep_trying(), name="ledger-gate")
    try:
        yield gate
    finally:
        retrying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retrying
