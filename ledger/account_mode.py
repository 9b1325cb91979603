"""The mode (test or live) an account's figures are in, so that they never mix the two.

A stored account names its mode (`accounts add` requires one); the environment's `default`
account takes the mode of its first stored event (the lowest position). Intake refuses
events of the other mode, and derivation reads only events of this mode, so events stored
before a refusal could act (two deliveries racing to be the first) never count either.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.errors import LedgerUnavailable
from ledger.schema import accounts, ledger_events
from ledger.settings import Mode


def account_livemode(account: str) -> ColumnElement[bool]:
    """SQL for the account's mode: true live, false test, NULL while nothing says.

    COALESCE stops at the stored account's mode, so the search for the first event (which
    walks positions from the start) runs only for an account that is not stored."""
    stored = select(accounts.c.mode == Mode.LIVE.value).where(accounts.c.name == account)
    # Aliased and uncorrelated: the query this is used in reads ledger_events too.
    e = ledger_events.alias("first_event").c
    first = select(e.livemode).where(e.account == account).order_by(e.position).limit(1)
    stored, first = stored.correlate(None), first.correlate(None)
    expression: ColumnElement[bool] = func.coalesce(
        stored.scalar_subquery(), first.scalar_subquery()
    )
    return expression


class PinnedModes:
    """Each account's mode once the database states it, for the life of the process: the
    first stored event never changes, nor does a stored account's mode."""

    def __init__(self) -> None:
        self._known: dict[str, bool] = {}

    async def livemode(self, engine: AsyncEngine, account: str) -> bool | None:
        """True live, False test, None while the account has no stored mode and no event;
        raises LedgerUnavailable when the database cannot say."""
        if account in self._known:
            return self._known[account]
        try:
            async with engine.connect() as conn:
                found = await conn.scalar(select(account_livemode(account)))
        except (SQLAlchemyError, OSError) as exc:
            raise LedgerUnavailable(f"account mode unreadable: {type(exc).__name__}") from exc
        if found is None:
            return None
        self._known[account] = bool(found)
        return self._known[account]

    async def refusal(self, engine: AsyncEngine, account: str, livemode: bool) -> str | None:
        """Why an event of this mode must be refused, or None to accept it."""
        pinned = await self.livemode(engine, account)
        return None if pinned is None else mode_refusal(account, pinned, livemode)


def mode_refusal(account: str, pinned_live: bool, event_live: bool) -> str | None:
    """The one-line reason to refuse an event of the other mode than the account's (only
    the environment's account can be without a configured mode, hence STRIPE_MODE)."""
    if pinned_live == event_live:
        return None
    mode, other = ("live", "test") if pinned_live else ("test", "live")
    return (
        f"a {other}-mode event sent to account {account!r}, whose ledger is in {mode} mode "
        f"(its first event's): set STRIPE_MODE={mode} to say so; {other}-mode events need a "
        "database or account of their own, so that figures never mix modes"
    )
