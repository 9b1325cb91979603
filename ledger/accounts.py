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
from ledger.secrets import SecretBox, SecretKeyError, mask
from ledger.settings import (
    DEFAULT_ACCOUNT,
    ConfigError,
    Mode,
    Settings,
    check_webhook_secret,
    mode_of_key,
)

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def is_account_name(name: str) -> bool:
    """Whether `name` could name an account (fullmatch: `$` would let a final newline in)."""
    return _NAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    webhook_secrets: tuple[str, ...]
    # None when neither an API key nor STRIPE_MODE says: both modes are then accepted.
    mode: Mode | None
    api_key: str | None = None
    enabled: bool = True
    # Why its stored secrets cannot be read (LEDGER_SECRET_KEY missing, weak or wrong):
    # it then has neither key nor signing secrets, and is served 503 until that is fixed.
    unreadable: str | None = None

    def accepts_livemode(self, livemode: bool) -> bool:
        return self.mode is None or livemode == (self.mode is Mode.LIVE)

    def __repr__(self) -> str:  # never print the secrets
        return (
            f"Account(name={self.name!r}, mode={self.mode}, key={mask(self.api_key)}, "
            f"secrets={len(self.webhook_secrets)}, enabled={self.enabled}, "
            f"readable={self.unreadable is None})"
        )


def accounts_from_settings(settings: Settings) -> dict[str, Account]:
    """The account the environment configures (none without STRIPE_WEBHOOK_SECRET);
    raises ConfigError when a secret or key is unusable."""
    if not settings.stripe_webhook_secret:
        return {}
    key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else None
    default = Account(DEFAULT_ACCOUNT, settings.webhook_secrets(), settings.mode(), key)
    return {default.name: default}


def secret_box(settings: Settings) -> SecretBox:
    """The keys of LEDGER_SECRET_KEY; raises SecretKeyError when they are unusable."""
    key = settings.ledger_secret_key
    return SecretBox(key.get_secret_value() if key else None)


async def stored_accounts(conn: AsyncConnection, settings: Settings) -> dict[str, Account]:
    """Every stored account; one whose secrets cannot be read is returned `unreadable`
    with the reason, so the others (and the environment's) keep working."""
    rows = (await conn.execute(select(accounts))).all()
    if not rows:
        return {}
    try:
        box: SecretBox | None = secret_box(settings)
        problem = ""
    except SecretKeyError as exc:
        box, problem = None, str(exc)
    found = {}
    for row in rows:
        mode, enabled = Mode(row.mode), row.enabled
        try:
            if box is None:
                raise SecretKeyError(problem)
            secrets = (
                tuple(orjson.loads(box.decrypt(row.webhook_secrets_encrypted)))
                if row.webhook_secrets_encrypted
                else ()
            )
            key = box.decrypt(row.api_key_encrypted) if row.api_key_encrypted else None
        except SecretKeyError as exc:
            reason = f"the secrets of account {row.name!r} cannot be read: {exc}"
            found[row.name] = Account(row.name, (), mode, None, enabled, unreadable=reason)
            continue
        found[row.name] = Account(row.name, secrets, mode, key, enabled)
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
    if not is_account_name(name):
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
    box = secret_box(settings)
    now = datetime.now(UTC)
    async with write_transaction(engine) as conn:
        if await conn.scalar(select(accounts.c.name).where(accounts.c.name == name)):
            raise ConfigError(f"account {name!r} already exists")
        await _refuse_a_second_key(conn, box)
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


async def _refuse_a_second_key(conn: AsyncConnection, box: SecretBox) -> None:
    """Stored secrets all under one key: a new one under a key that cannot read those
    already stored (a slip, a stale .env) would leave some unreadable whichever key is set."""
    stored = await conn.execute(
        select(accounts.c.name, accounts.c.webhook_secrets_encrypted)
        .where(accounts.c.webhook_secrets_encrypted.is_not(None))
        .limit(1)
    )
    for name, token in stored:
        try:
            box.decrypt(token)
        except SecretKeyError:
            raise SecretKeyError(
                f"LEDGER_SECRET_KEY cannot read the secrets already stored (account {name!r}): "
                "set the key they were stored with, or move them with "
                "`stripe-ledger accounts rotate-key` first"
            ) from None


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


async def rotate_secret_key(engine: AsyncEngine, settings: Settings) -> int:
    """Re-encrypt every stored secret under the first key of LEDGER_SECRET_KEY, in one
    transaction: a secret no key can read raises SecretKeyError and changes nothing.
    Returns how many accounts were re-encrypted."""
    box = secret_box(settings)
    async with write_transaction(engine) as conn:
        rows = (await conn.execute(select(accounts))).all()
        for row in rows:
            try:
                values = {
                    column: box.rotate(getattr(row, column))
                    for column in ("api_key_encrypted", "webhook_secrets_encrypted")
                    if getattr(row, column)
                }
            except SecretKeyError as exc:
                raise SecretKeyError(f"nothing re-encrypted: account {row.name!r}: {exc}") from None
            await conn.execute(
                update(accounts)
                .where(accounts.c.name == row.name)
                .values(**values, updated_at=datetime.now(UTC))
            )
    return len(rows)
