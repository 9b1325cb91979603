"""The Stripe accounts this ledger receives events for, and what each one accepts.

Today the one account is `default`, configured from the environment; each account has
its own webhook URL (`/webhooks/stripe/{name}`), signing secrets and mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ledger.settings import DEFAULT_ACCOUNT, Mode, Settings


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    webhook_secrets: tuple[str, ...]
    # None when neither an API key nor STRIPE_MODE says: both modes are then accepted.
    mode: Mode | None

    def accepts_livemode(self, livemode: bool) -> bool:
        return self.mode is None or livemode == (self.mode is Mode.LIVE)

    def __repr__(self) -> str:  # never print the secrets
        return f"Account(name={self.name!r}, mode={self.mode}, secrets={len(self.webhook_secrets)})"


def accounts_from_settings(settings: Settings) -> Mapping[str, Account]:
    """The configured accounts; raises ConfigError when a secret or key is unusable."""
    default = Account(DEFAULT_ACCOUNT, settings.webhook_secrets(), settings.mode())
    return {default.name: default}
