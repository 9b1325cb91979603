"""The dashboard's notice that some customers of the account are quarantined (their events
cannot be derived, so every figure leaves them out): see projections/quarantine.py."""

from __future__ import annotations

from html import escape

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.quarantine import all_quarantined


async def quarantine_notice(engine: AsyncEngine, account: str) -> str:
    """An alert paragraph naming how many customers are left out, or nothing."""
    held = await all_quarantined(engine, account)
    if not held:
        return ""
    return (
        f'<p role="alert" id="quarantine">{len(held)} customers of account {escape(account)} '
        "cannot be derived and are left out of every figure below; "
        "<code>stripe-ledger ledger stats</code> names them and their events.</p>"
    )
