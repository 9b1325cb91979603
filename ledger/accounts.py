"""The Stripe accounts this ledger receives events for, and what each one accepts.

The `default` account may come from the environment (STRIPE_WEBHOOK_SECRET,
STRIPE_API_KEY); any number of others are stored in the `accounts` table with their
secrets encrypted (`stripe-ledger accounts add`). Each has its own webhook URL
(`/webhooks/stripe/{name}`), signing secrets and mode; a disabled one keeps its history
but receives and fetches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import write_transaction
from ledger.errors import LedgerUnavailable
from ledger.schema import accounts
from ledger.secrets import SecretBox, mask
from ledger.settings import (
    DEFAULT_ACCOUNT,
    ConfigError,
    Mode,
    Settings,
    check_webhook_secret,
    mode_of_key,
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    webhook_secrets: tuple[str, ...]
    # None when neither an API key nor STRIPE_MODE says: both modes are then accepted.
    mode: Mode | None
    api_key: str | None = None
    enabled: bool = True

    def accepts_livemode(self, livemode: bool) -> bool:
        return self.mode is None or livemode == (self.mode is Mode.LIVE)

    def __repr__(self) -> str:  # never print the secrets
        return (
            f"Account(name={self.name!r}, mode={self.mode}, key={mask(self.api_key)}, "
            f"secrets={len(self.webhook_secrets)}, enabled={self.enabled})"
        )


def accounts_from_settings(settings: Settings) -> dict[str, Account]:
    """The account the environment configures (none without STRIPE_WEBHOOK_SECRET);
    raises ConfigError when a secret or key is unusable."""
    if not settings.stripe_webhook_secret:
        return {}
    key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else None
    default = Account(DEFAULT_ACCOUNT, settings.webhook_secrets(), settings.mode(), key)
    return {default.name: default}


async def stored_accounts(conn: AsyncConnection, settings: Settings) -> dict[str, Account]:
    rows = (await conn.execute(select(accounts))).all()
    if not rows:
        return {}
    box = SecretBox(
        settings.ledger_secret_key.get_secret_value() if settings.ledger_secret_key else None
    )
    found = {}
    for row in rows:
        secrets = (
            tuple(orjson.loads(box.decrypt(row.webhook_secrets_encrypted)))
            if row.webhook_secrets_encrypted
            else ()
        )
        key = box.decrypt(row.api_key_encrypted) if row.api_key_encrypted else None
        found[row.name] = Account(row.name, secrets, Mode(row.mode), key, row.enabled)
    return found


async def all_accounts(engine: AsyncEngine, settings: Settings) -> dict[str, Account]:
    """Stored accounts, and the environment's `default` unless one is stored by that name."""
    try:
        async with engine.connect() as conn:
            stored = await stored_accounts(conn, settings)
    except (SQLAlchemyError, OSError) as exc:
        raise LedgerUnavailable(f"accounts unreadable: {type(exc).__name__}") from exc
    return {**accounts_from_settings(settings), **stored}


async def add_account(
    engine: AsyncEngine,
    settings: Settings,
    name: str,
    *,
    api_key: str | None,
    webhook_secrets: Sequence[str],
    mode: Mode | None = None,
) -> Account:
    """Store an account, its key and secrets encrypted; raises ConfigError saying what is
    wrong (a publishable key, a placeholder secret, a name in use) and stores nothing."""
    if not _NAME.match(name):
        raise ConfigError(
            f"account name {name!r} must be lowercase letters, digits, - or _ (it becomes "
            "part of the webhook URL)"
        )
    key_mode = mode_of_key(api_key, "--api-key") if api_key else None
    if key_mode is not None and mode is not None and key_mode is not mode:
        raise ConfigError(f"--mode {mode} contradicts the API key, which is a {key_mode} key")
    chosen = key_mode or mode
    if chosen is None:
        raise ConfigError("give --api-key (its prefix sets the mode) or --mode test|live")
    if not webhook_secrets:
        check_webhook_secret("")
    for secret in webhook_secrets:
        check_webhook_secret(secret)
    box = SecretBox(
        settings.ledger_secret_key.get_secret_value() if settings.ledger_secret_key else None
    )
    now = datetime.now(UTC)
    async with write_transaction(engine) as conn:
        if await conn.scalar(select(accounts.c.name).where(accounts.c.name == name)):
            raise ConfigError(f"account {name!r} already exists")
        await conn.execute(
            accounts.insert().values(
                name=name,
                mode=chosen.value,
                api_key_encrypted=box.encrypt(api_key) if api_key else None,
                webhook_secrets_encrypted=box.encrypt(orjson.dumps(list(webhook_secrets)).decode()),
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )
    return Account(name, tuple(webhook_secrets), chosen, api_key)


async def set_enabled(engine: AsyncEngine, name: str, enabled: bool) -> None:
    async with write_transaction(engine) as conn:
        result = await conn.execute(
            update(accounts)
            .where(accounts.c.name == name)
            .values(enabled=enabled, updated_at=datetime.now(UTC))
        )
        if result.rowcount == 0:
            raise ConfigError(
                f"no stored account {name!r} (the environment's `default` cannot be disabled)"
            )
