"""The accounts a serving process caches: when the database cannot be read at a reload,
the accounts already known keep being served, and an unknown name is a 503, not a 404."""

from __future__ import annotations

import pytest

from ledger.accounts import Account
from ledger.engine import create_engine
from ledger.errors import LedgerUnavailable
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
