"""The accounts a serving process knows, read again from the database at most every
RELOAD_SECONDS, so `accounts add`, `disable`, `enable` and `rotate-key` reach every running
process within seconds, with one query per interval rather than one per request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.accounts import Account, all_accounts
from ledger.errors import LedgerUnavailable
from ledger.logs import get_logger
from ledger.settings import Settings

log = get_logger("webhooks")

RELOAD_SECONDS = 2.0
# A request waits this long at most for a reload; past it, what is cached serves it.
_WAIT_SECONDS = 2.0


def enabled_names(known: Mapping[str, Account]) -> list[str]:
    return sorted(name for name, account in known.items() if account.enabled)


class AccountCache:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        known: Mapping[str, Account],
        names: list[str],
    ) -> None:
        self._engine = engine
        self._settings = settings
        self.known = dict(known)
        # Shared with the companions (the projection worker reads it every round).
        self._names = names
        self._loaded_at = time.monotonic()
        self._reload: asyncio.Task[None] | None = None
        self._failing = False
        self._reported: dict[str, str] = {}
        self._report_unreadable()

    async def get(self, name: str) -> Account | None:
        """The account by that name as stored a few seconds ago at most; raises
        LedgerUnavailable for a name not known while the database cannot be read."""
        if time.monotonic() - self._loaded_at >= RELOAD_SECONDS:
            if self._reload is None:  # one reload in flight, shared by every request
                self._reload = asyncio.create_task(self._load())
            await asyncio.wait({self._reload}, timeout=_WAIT_SECONDS)
        found = self.known.get(name)
        if found is None and self._failing:
            raise LedgerUnavailable("accounts unreadable")
        return found

    async def _load(self) -> None:
        try:
            known = await all_accounts(self._engine, self._settings)
        except Exception as exc:  # keep serving what is known; the next interval retries
            if not self._failing:
                log.warning("accounts_reload_failed", error=type(exc).__name__)
            self._failing = True
        else:
            self.known = known
            self._names[:] = enabled_names(known)
            self._failing = False
            self._report_unreadable()
        finally:
            self._loaded_at = time.monotonic()
            self._reload = None

    def _report_unreadable(self) -> None:
        """Log an account whose secrets cannot be read once, not on each delivery."""
        for name, account in self.known.items():
            if account.unreadable and self._reported.get(name) != account.unreadable:
                log.error("account_unreadable", account=name, reason=account.unreadable)
                self._reported[name] = account.unreadable
        mended = [n for n in self._reported if n not in self.known or not self.known[n].unreadable]
        for name in mended:
            log.info("account_readable", account=name)
            del self._reported[name]
