"""Settings refuse what cannot work, and say what to set instead."""

from __future__ import annotations

import pytest

from ledger.settings import ConfigError, Mode, Settings, check_webhook_secret, mode_of_key


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_...",
        "whsec_xxx",
        "whsec_your_secret_here_please",
        "sk_test_abcdefghijklmnopqrstu",
    ],
)
def test_an_empty_or_placeholder_webhook_secret_is_refused(secret: str) -> None:
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET"):
        check_webhook_secret(secret)


def test_several_comma_separated_secrets_are_all_accepted() -> None:
    configured = settings(
        STRIPE_WEBHOOK_SECRET="whsec_AAAAAAAAAAAAAAAAAAAAAAAA, whsec_BBBBBBBBBBBBBBBBBBBBBBBB"
    )
    assert configured.webhook_secrets() == (
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAA",
        "whsec_BBBBBBBBBBBBBBBBBBBBBBBB",
    )


def test_a_secret_never_appears_in_the_settings_repr() -> None:
    configured = settings(
        STRIPE_WEBHOOK_SECRET="whsec_AAAAAAAAAAAAAAAAAAAAAAAA", STRIPE_API_KEY="sk_test_" + "k" * 24
    )
    assert "whsec_A" not in repr(configured) and "sk_test_k" not in repr(configured)


@pytest.mark.parametrize(
    ("key", "mode"),
    [
        ("sk_test_abc", Mode.TEST),
        ("rk_test_abc", Mode.TEST),
        ("sk_live_abc", Mode.LIVE),
        ("rk_live_abc", Mode.LIVE),
    ],
)
def test_the_mode_comes_from_the_key(key: str, mode: Mode) -> None:
    assert mode_of_key(key) is mode


@pytest.mark.parametrize("key", ["pk_test_abc", "pk_live_abc"])
def test_a_publishable_key_is_refused_with_where_to_find_the_right_one(key: str) -> None:
    with pytest.raises(ConfigError, match=r"publishable key.*API keys") as raised:
        mode_of_key(key)
    assert key not in str(raised.value)


@pytest.mark.parametrize("key", ["whsec_abc", "abc", "acct_123"])
def test_anything_else_is_refused_as_a_key(key: str) -> None:
    with pytest.raises(ConfigError, match="sk_test_, sk_live_, rk_test_ or rk_live_"):
        mode_of_key(key)


def test_a_stated_mode_that_contradicts_the_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="contradicts"):
        settings(STRIPE_API_KEY="sk_live_abc", STRIPE_MODE="test").mode()


def test_the_default_database_is_a_sqlite_file_in_the_data_folder() -> None:
    assert settings().database_url.startswith("sqlite+aiosqlite:///")
    assert settings().database_url.endswith("/data/ledger.sqlite3")
