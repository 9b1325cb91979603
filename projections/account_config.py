"""Each account's metric settings and reporting currency, as the operator stored them.

Stored as name/value pairs in `account_settings`: a `profile` (default or stripe_compat)
plus any single settings over it. What is not stored falls back to the profile, and the
reporting currency to LEDGER_REPORTING_CURRENCY.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.schema import account_settings
from projections.metric_settings import (
    PROFILES,
    Activation,
    ChurnFormula,
    ChurnRecognition,
    FreeCustomerHandling,
    MetricSettings,
)

REPORTING_CURRENCY = "reporting_currency"
PROFILE = "profile"
_CHOICES: dict[str, tuple[str, ...]] = {
    "activation": get_args(Activation),
    "churn_recognition": get_args(ChurnRecognition),
    "free_customer_handling": get_args(FreeCustomerHandling),
    "customer_churn_formula": get_args(ChurnFormula),
}
_TYPES = {f.name: f.type for f in fields(MetricSettings)}
SETTING_NAMES = (PROFILE, REPORTING_CURRENCY, *_TYPES)


class SettingError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AccountConfig:
    settings: MetricSettings
    reporting_currency: str
    stored: dict[str, str]


def parse_setting(name: str, value: str) -> Any:
    """The typed value of a setting given as text, or a SettingError saying what is allowed."""
    if name == PROFILE:
        if value not in PROFILES:
            raise SettingError(f"profile must be one of {', '.join(PROFILES)}")
        return value
    if name == REPORTING_CURRENCY:
        if len(value) != 3 or not value.isalpha():
            raise SettingError("reporting_currency must be a 3-letter ISO code, e.g. usd")
        return value.lower()
    if name not in _TYPES:
        raise SettingError(f"unknown setting {name!r}; known: {', '.join(SETTING_NAMES)}")
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise SettingError(f"{name} must be one of {', '.join(_CHOICES[name])}")
        return value
    if _TYPES[name] in ("bool", bool):
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise SettingError(f"{name} must be true or false")
        return lowered == "true"
    try:
        number = int(value)
    except ValueError:
        raise SettingError(f"{name} must be a whole number") from None
    if number < 0:
        raise SettingError(f"{name} cannot be negative")
    return number


async def load_config(conn: AsyncConnection, account: str, default_currency: str) -> AccountConfig:
    s = account_settings.c
    rows = await conn.execute(select(s.name, s.value).where(s.account == account))
    stored = {row.name: row.value for row in rows}
    base = PROFILES[stored.get(PROFILE, "default")]
    overrides = {
        name: parse_setting(name, value)
        for name, value in stored.items()
        if name not in (PROFILE, REPORTING_CURRENCY)
    }
    return AccountConfig(
        settings=base.with_overrides(**overrides),
        reporting_currency=stored.get(REPORTING_CURRENCY, default_currency).lower(),
        stored=stored,
    )


async def store_setting(conn: AsyncConnection, account: str, name: str, value: str) -> None:
    """Store one setting (checked); choosing a profile clears the single settings over it."""
    parsed = parse_setting(name, value)
    s = account_settings.c
    if name == PROFILE:
        await conn.execute(
            delete(account_settings).where(
                s.account == account, s.name.not_in([REPORTING_CURRENCY])
            )
        )
    await conn.execute(delete(account_settings).where(s.account == account, s.name == name))
    text = str(parsed).lower() if isinstance(parsed, bool) else str(parsed)
    await conn.execute(
        account_settings.insert().values(
            account=account, name=name, value=text, updated_at=datetime.now(UTC)
        )
    )
