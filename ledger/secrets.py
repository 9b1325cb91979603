"""Secrets at rest and on screen: API keys and signing secrets stored in the database are
encrypted with LEDGER_SECRET_KEY (Fernet: AES with an HMAC), and shown only masked.
LEDGER_SECRET_KEY may hold several keys, `NEW,OLD`: the first encrypts, any decrypts."""

from __future__ import annotations

import base64
import binascii
from itertools import pairwise

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ledger.settings import ConfigError

_CREATE = "create one with `stripe-ledger accounts new-secret-key`"
# 32 random bytes show about 30 distinct values (fewer than 22 in under one key in 300,000
# drawn); fewer than 16, or only printable characters, means a pattern or a passphrase.
_MIN_DISTINCT_BYTES = 16


class SecretKeyError(ConfigError):
    """LEDGER_SECRET_KEY is missing, malformed, weak, or not the key a secret was stored
    with; the message says which, never the key."""


def new_secret_key() -> str:
    return Fernet.generate_key().decode()


def weakness(raw: bytes) -> str | None:
    """Why these key bytes are not random-looking, or None when they are."""
    steps = {(b - a) % 256 for a, b in pairwise(raw)}
    if len(set(raw)) < _MIN_DISTINCT_BYTES:
        return "it repeats a few byte values"
    if len(steps) < _MIN_DISTINCT_BYTES:
        return "its bytes follow a pattern"
    if all(0x20 <= b < 0x7F for b in raw):
        return "its bytes are all printable characters, like a passphrase"
    return None


def _fernet(key: str, which: str, *, strong: bool) -> Fernet:
    try:
        raw = base64.urlsafe_b64decode(key.encode())
        fernet = Fernet(key.encode())
    except (ValueError, binascii.Error):
        raise SecretKeyError(
            f"{which} is not a valid key (32 url-safe base64-encoded bytes); {_CREATE}"
        ) from None
    why = weakness(raw) if strong else None
    if why:
        raise SecretKeyError(
            f"{which} is a weak key ({why}): {_CREATE}, and move the stored secrets to it "
            "with `stripe-ledger accounts rotate-key` (see docs/operations.md)"
        )
    return fernet


class SecretBox:
    """The keys of LEDGER_SECRET_KEY: the first (which must be strong) encrypts; every one
    decrypts, so secrets stored under an older key stay readable during a rotation."""

    def __init__(self, keys: str | None) -> None:
        parts = [part.strip() for part in (keys or "").split(",") if part.strip()]
        if not parts:
            raise SecretKeyError(
                "LEDGER_SECRET_KEY is not set: it encrypts the API keys and signing secrets "
                f"stored in the database; {_CREATE} and keep it in .env"
            )
        names = (
            ["LEDGER_SECRET_KEY"]
            if len(parts) == 1
            else [f"key {n} of LEDGER_SECRET_KEY" for n in range(1, len(parts) + 1)]
        )
        self._fernet = MultiFernet(
            [
                _fernet(part, name, strong=index == 0)
                for index, (part, name) in enumerate(zip(parts, names, strict=True))
            ]
        )

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(_UNDECRYPTABLE) from None

    def rotate(self, token: str) -> str:
        """The same secret, encrypted under the first key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(_UNDECRYPTABLE) from None


_UNDECRYPTABLE = (
    "a stored secret cannot be decrypted with LEDGER_SECRET_KEY: it is not the key the "
    "secrets were stored with (during a rotation it may hold `NEW,OLD`)"
)


def mask(secret: str | None) -> str:
    """`sk_live_...4f2a`: the prefix that says what it is, and the last four characters."""
    if not secret:
        return "(none)"
    # sk_live_, rk_test_, whsec_: up to the last underscore of the first two parts.
    parts = secret.split("_")
    prefix = "_".join(parts[:2]) + "_" if len(parts) > 2 and len(parts[1]) <= 4 else parts[0] + "_"
    return f"{prefix}...{secret[-4:]}"
