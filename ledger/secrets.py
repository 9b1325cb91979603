"""Secrets at rest and on screen: API keys and signing secrets stored in the database are
encrypted with LEDGER_SECRET_KEY (Fernet: AES with an HMAC), and shown only masked."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from ledger.settings import ConfigError


def new_secret_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    def __init__(self, key: str | None) -> None:
        if not key:
            raise ConfigError(
                "LEDGER_SECRET_KEY is not set: it encrypts the API keys and signing secrets "
                "stored in the database; create one with `stripe-ledger accounts new-secret-key`"
            )
        try:
            self._fernet = Fernet(key.encode())
        except ValueError:
            raise ConfigError(
                "LEDGER_SECRET_KEY is not a valid key (32 url-safe base64-encoded bytes); "
                "create one with `stripe-ledger accounts new-secret-key`"
            ) from None

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "a stored secret cannot be decrypted with LEDGER_SECRET_KEY: it is not the "
                "key the secrets were stored with"
            ) from None


def mask(secret: str | None) -> str:
    """`sk_live_...4f2a`: the prefix that says what it is, and the last four characters."""
    if not secret:
        return "(none)"
    # sk_live_, rk_test_, whsec_: up to the last underscore of the first two parts.
    parts = secret.split("_")
    prefix = "_".join(parts[:2]) + "_" if len(parts) > 2 and len(parts[1]) <= 4 else parts[0] + "_"
    return f"{prefix}...{secret[-4:]}"
