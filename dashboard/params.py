"""The query parameters every read endpoint shares, checked before any work: a bad one is
a one-line 400, never an exception further in."""

from __future__ import annotations

from collections.abc import Mapping

from ledger.accounts import is_account_name
from ledger.settings import DEFAULT_ACCOUNT


class BadParameter(ValueError):
    """A parameter the caller got wrong; its message is the answer."""


def account_of(params: Mapping[str, str]) -> str:
    """The `account` asked for (the default when absent or empty). Only a possible account
    name passes, so no caller's text reaches a header, a file name or a log unchecked."""
    account = params.get("account") or DEFAULT_ACCOUNT
    if not is_account_name(account):
        raise BadParameter(
            "account must be an account name: 1 to 64 lowercase letters, digits, - or _"
        )
    return account
