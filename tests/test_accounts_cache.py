"""The accounts a serving process caches: when the database cannot be read at a reload,
the accounts already known keep being served, and an unknown name is a 503, not a 404;
an account whose secrets cannot be read is logged once, not on every delivery."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from ledger.accounts import Account, add_account, all_accounts
from ledger.engine import create_engine
from ledger.errors import LedgerUnavailable
from ledger.secrets import new_secret_key
from ledger.settings import Mode
from tests.conftest import make_settings
from tests.support.databases import TestDatabase
from tests.support.processes import free_port
from tests.support.signing import OTHER_SECRET
from webhooks import accounts_cache
from webhooks.accounts_cache import AccountCache


async def test_known_accounts_are_served_from_the_cache_while_the_database_cannot_be_read(
    database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts_cache, "RELOAD_SECONDS", 0.0)  # reload on every call
    unreachable = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    shop = Account("shop", (OTHER_SECRET,), Mode.TEST)
    names = ["shop"]
    cache = AccountCache(unreachable, make_settings(database), {"shop": shop}, names)
    try:
        assert await cache.get("shop") == shop
        with pytest.raises(LedgerUnavailable):
            await cache.get("added-meanwhile")
    finally:
        await unreachable.dispose()
    assert names == ["shop"]


async def test_an_unreadable_account_is_logged_once_and_again_once_it_is_readable(
    database: TestDatabase, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_secret_key()
    settings = make_settings(database, LEDGER_SECRET_KEY=key)
    await add_account(
        engine, settings, "prod", api_key=None, webhook_secrets=[OTHER_SECRET], mode=Mode.TEST
    )
    wrong = make_settings(database, LEDGER_SECRET_KEY=new_secret_key())
    with capture_logs() as logs:
        cache = AccountCache(engine, wrong, await all_accounts(engine, wrong), [])
        monkeypatch.setattr(accounts_cache, "RELOAD_SECONDS", 0.0)
        for _ in range(3):
            unreadable = await cache.get("prod")
        cache._settings = settings  # the key put back
        for _ in range(3):
            readable = await cache.get("prod")
    assert unreadable is not None and unreadable.unreadable
    assert readable is not None and readable.webhook_secrets == (OTHER_SECRET,)
    assert [e["event"] for e in logs if e["event"].startswith("account_")] == [
        "account_unreadable",
        "account_readable",
    ]
