"""All configuration, read once from the environment (and an optional `.env` file).

This is the one place a setting is named, typed and checked; secrets stay `SecretStr`
so they cannot leak through a repr, a log line or an error message.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_ACCOUNT = "default"
MIN_DASHBOARD_TOKEN = 16

# Stripe signing secrets are `whsec_` followed by 32+ base64-ish characters; anything
# shorter is a placeholder copied from a tutorial, and would make every delivery fail.
_WEBHOOK_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/=_-]{16,}$")
_PLACEHOLDER_WORDS = ("xxx", "placeholder", "changeme", "change_me", "replace", "your_", "example")

WHERE_TO_FIND_SECRET = (
    "set STRIPE_WEBHOOK_SECRET to the endpoint's signing secret: Stripe Dashboard > "
    "Developers > Webhooks > your endpoint > Signing secret, or the whsec_ value "
    "printed by `stripe listen --print-secret`"
)


class ConfigError(ValueError):
    """A setting is missing or unusable; the message says what to set, never its value."""


class Mode(StrEnum):
    TEST = "test"
    LIVE = "live"


def mode_of_key(key: str, source: str = "STRIPE_API_KEY") -> Mode:
    """The mode a Stripe API key works in, or a ConfigError naming the key to use instead."""
    if key.startswith(("sk_test_", "rk_test_")):
        return Mode.TEST
    if key.startswith(("sk_live_", "rk_live_")):
        return Mode.LIVE
    if key.startswith("pk_"):
        raise ConfigError(
            f"{source} is a publishable key (pk_...), which cannot read billing data: "
            "copy the secret key (sk_...) or a restricted key (rk_...) from Stripe Dashboard "
            "> Developers > API keys"
        )
    raise ConfigError(
        f"{source} is not a Stripe secret or restricted key: it must start with "
        "sk_test_, sk_live_, rk_test_ or rk_live_ (Stripe Dashboard > Developers > API keys)"
    )


def check_webhook_secret(secret: str) -> None:
    """Refuse an empty or placeholder signing secret, saying what to set instead."""
    lowered = secret.lower()
    if not secret:
        raise ConfigError(f"STRIPE_WEBHOOK_SECRET is empty: {WHERE_TO_FIND_SECRET}")
    if not _WEBHOOK_SECRET.match(secret) or any(w in lowered for w in _PLACEHOLDER_WORDS):
        raise ConfigError(
            f"STRIPE_WEBHOOK_SECRET does not look like a Stripe signing secret "
            f"(whsec_ followed by at least 16 characters): {WHERE_TO_FIND_SECRET}"
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # Where the ledger lives. SQLite is the embedded default; PostgreSQL is the
    # production engine (postgresql+asyncpg://user@host/db).
    ledger_database_url: str = Field(default="", validation_alias="LEDGER_DATABASE_URL")
    # PostgreSQL only: keep the ledger's tables in this schema instead of `public`.
    ledger_database_schema: str | None = Field(
        default=None, validation_alias="LEDGER_DATABASE_SCHEMA", pattern=r"^[a-z_][a-z0-9_]*$"
    )
    ledger_data_dir: Path = Field(default=Path("data"), validation_alias="LEDGER_DATA_DIR")

    # Several secrets, comma-separated, so a rotation can accept old and new at once.
    stripe_webhook_secret: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(), validation_alias="STRIPE_WEBHOOK_SECRET"
    )
    stripe_api_key: SecretStr | None = Field(default=None, validation_alias="STRIPE_API_KEY")
    # Encrypts the API keys and signing secrets of accounts stored in the database.
    ledger_secret_key: SecretStr | None = Field(default=None, validation_alias="LEDGER_SECRET_KEY")
    # The read API and the dashboard answer only to this token (or its login cookie).
    dashboard_token: SecretStr | None = Field(
        default=None, validation_alias="LEDGER_DASHBOARD_TOKEN"
    )
    # Without an API key the mode can be stated; with neither, both modes are accepted.
    stripe_mode: Mode | None = Field(default=None, validation_alias="STRIPE_MODE")

    # Figures are reported in this currency unless an account stores its own.
    reporting_currency: str = Field(
        default="usd", validation_alias="LEDGER_REPORTING_CURRENCY", pattern=r"^[A-Za-z]{3}$"
    )
    # Where replay reads Stripe's API; tests point it at a local stand-in.
    stripe_api_base: str = Field(
        default="https://api.stripe.com", validation_alias="STRIPE_API_BASE"
    )
    # Stripe allows 100 requests/s live and 25/s in test mode (and per endpoint): stay under.
    replay_requests_per_second: float = Field(
        default=20.0, gt=0, le=100, validation_alias="LEDGER_REPLAY_REQUESTS_PER_SECOND"
    )
    # `serve --reconcile`: replay a trailing window in the background this often.
    reconcile: Literal["off", "hourly", "daily", "weekly"] = Field(
        default="off", validation_alias="LEDGER_RECONCILE"
    )
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, validation_alias="LEDGER_WEBHOOK_TOLERANCE_SECONDS"
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, validation_alias="LEDGER_MAX_BODY_BYTES"
    )
    # How long a webhook request may wait for its commit before answering 503.
    commit_timeout_seconds: float = Field(
        default=10.0, gt=0, validation_alias="LEDGER_COMMIT_TIMEOUT_SECONDS"
    )
    max_batch: int = Field(default=256, ge=1, validation_alias="LEDGER_MAX_BATCH")
    # What one unauthenticated connection may cost `serve` (see cli/serving.py and the
    # limits section of docs/webhooks.md).
    max_header_bytes: int = Field(
        default=32 * 1024, ge=4096, validation_alias="LEDGER_MAX_HEADER_BYTES"
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, validation_alias="LEDGER_HEADER_TIMEOUT_SECONDS"
    )
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, validation_alias="LEDGER_BODY_TIMEOUT_SECONDS"
    )
    keep_alive_seconds: int = Field(default=5, ge=1, validation_alias="LEDGER_KEEP_ALIVE_SECONDS")
    max_connections: int = Field(default=2048, ge=16, validation_alias="LEDGER_MAX_CONNECTIONS")
    shutdown_grace_seconds: int = Field(
        default=10, ge=1, validation_alias="LEDGER_SHUTDOWN_GRACE_SECONDS"
    )
    log_level: str = Field(default="info", validation_alias="LEDGER_LOG_LEVEL")

    @field_validator("stripe_webhook_secret", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("stripe_api_key", "ledger_secret_key", "dashboard_token", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("dashboard_token")
    @classmethod
    def _token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # All that guards the figures: a short one could be guessed despite the rate limit.
        if value is not None and len(value.get_secret_value()) < MIN_DASHBOARD_TOKEN:
            raise ValueError(
                f"must be at least {MIN_DASHBOARD_TOKEN} characters; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @property
    def database_url(self) -> str:
        if self.ledger_database_url:
            return self.ledger_database_url
        return f"sqlite+aiosqlite:///{(self.ledger_data_dir / 'ledger.sqlite3').resolve()}"

    def webhook_secrets(self) -> tuple[str, ...]:
        """The signing secrets, checked; raises ConfigError when none is usable."""
        secrets = tuple(s.get_secret_value() for s in self.stripe_webhook_secret)
        if not secrets:
            check_webhook_secret("")
        for secret in secrets:
            check_webhook_secret(secret)
        return secrets

    def api_key(self) -> str:
        """The Stripe API key, checked; raises ConfigError naming what to set."""
        if self.stripe_api_key is None or not self.stripe_api_key.get_secret_value():
            raise ConfigError(
                "STRIPE_API_KEY is not set: replay reads Stripe's API with a secret key (sk_...) "
                "or a restricted key (rk_...) from Stripe Dashboard > Developers > API keys"
            )
        key = self.stripe_api_key.get_secret_value()
        mode_of_key(key)
        return key

    def mode(self) -> Mode | None:
        """The account's mode: from the API key when there is one, else STRIPE_MODE."""
        if self.stripe_api_key is not None:
            key_mode = mode_of_key(self.stripe_api_key.get_secret_value())
            if self.stripe_mode is not None and self.stripe_mode != key_mode:
                raise ConfigError(
                    f"STRIPE_MODE={self.stripe_mode} contradicts STRIPE_API_KEY, "
                    f"which is a {key_mode} key"
                )
            return key_mode
        return self.stripe_mode


def describe(error: ValidationError) -> str:
    """A settings error as one line naming each variable and what is wrong, never a value."""
    return "; ".join(
        f"{'.'.join(str(part) for part in found['loc'])}: "
        + found["msg"].removeprefix("Value error, ")
        for found in error.errors(include_url=False, include_input=False)
    )


def load_settings() -> Settings:
    return Settings()
