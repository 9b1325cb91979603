"""`serve` before it listens: apply pending migrations if the database can be used now.

If it cannot (unreachable, unopenable, read-only), the reason is one line and the server
starts anyway: it answers 503 until the database can be used, then applies the migrations
itself (webhooks.ledger_gate).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import ArgumentError

from ledger.engine import engine_from_settings, normalise_url
from ledger.migrate import upgrade
from ledger.readiness import describe
from ledger.settings import ConfigError, Settings


def migrate_if_possible(settings: Settings) -> str | None:
    """None once the schema is current; else why the database cannot be used now. A URL
    that names no database we can use is a ConfigError: no retry would help."""
    try:
        normalise_url(settings.database_url)
    except (ValueError, ArgumentError) as exc:  # their messages quote no password
        reason = str(exc)
        named = reason if "LEDGER_DATABASE_URL" in reason else f"LEDGER_DATABASE_URL: {reason}"
        raise ConfigError(named) from None

    async def work() -> None:
        engine = engine_from_settings(settings)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(work())
    except Exception as exc:  # reported in one line; the server retries once it runs
        return describe(exc)
    return None
