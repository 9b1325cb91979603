"""`stripe-ledger accounts`: several Stripe accounts side by side."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.common import console, errors, load_cli_settings, with_engine
from ledger.accounts import Account, add_account, all_accounts, rotate_secret_key, set_enabled
from ledger.schema import ledger_events
from ledger.secrets import mask, new_secret_key
from ledger.settings import ConfigError, Mode

accounts_app = typer.Typer(no_args_is_help=True, help="Stripe accounts and their secrets.")


def _refuse(exc: ConfigError) -> typer.Exit:
    errors.print(f"[red]{exc}[/red]")
    return typer.Exit(2)


@accounts_app.command("add")
def accounts_add(
    name: Annotated[str, typer.Argument(help="A short name; the webhook URL ends with it.")],
    api_key: Annotated[str | None, typer.Option(help="sk_ or rk_ key (sets the mode).")] = None,
    webhook_secret: Annotated[
        list[str] | None, typer.Option(help="The endpoint's signing secret (repeatable).")
    ] = None,
    mode: Annotated[Mode | None, typer.Option(help="test or live, when there is no key.")] = None,
    api_key_file: Annotated[
        str | None,
        typer.Option(help="Read the API key from this file ('-': standard input)."),
    ] = None,
    webhook_secret_file: Annotated[
        str | None,
        typer.Option(help="Read the signing secrets, one a line, from this file ('-': stdin)."),
    ] = None,
) -> None:
    """Store an account; its key and secrets are encrypted with LEDGER_SECRET_KEY. Give
    them in files or on standard input to keep them out of shell history and `ps`."""
    settings = load_cli_settings()
    try:
        key, secrets = _secrets_given(api_key, api_key_file, webhook_secret, webhook_secret_file)
    except ConfigError as exc:
        raise _refuse(exc) from None

    async def work(engine: AsyncEngine) -> Account:
        return await add_account(
            engine, settings, name, api_key=key, webhook_secrets=secrets, mode=mode
        )

    try:
        account = with_engine(settings, work)
    except ConfigError as exc:
        raise _refuse(exc) from None
    console.print(
        f"added {account.name} ({_mode_label(account)}), key {mask(account.api_key)}, "
        f"{len(account.webhook_secrets)} signing secret(s); point Stripe at "
        f"https://<your-host>/webhooks/stripe/{account.name}"
    )


def _secrets_given(
    api_key: str | None,
    api_key_file: str | None,
    webhook_secret: list[str] | None,
    webhook_secret_file: str | None,
) -> tuple[str | None, list[str]]:
    """The API key and signing secrets, from the options or the files they name."""
    if api_key is not None and api_key_file is not None:
        raise ConfigError("give --api-key or --api-key-file, not both")
    if webhook_secret and webhook_secret_file is not None:
        raise ConfigError("give --webhook-secret or --webhook-secret-file, not both")
    if api_key_file == "-" and webhook_secret_file == "-":
        raise ConfigError(
            "only one of --api-key-file and --webhook-secret-file can read standard input"
        )
    key = api_key
    if api_key_file is not None:
        lines = _lines_of(api_key_file, "--api-key-file")
        if len(lines) != 1:
            raise ConfigError(f"--api-key-file must hold one key on one line, not {len(lines)}")
        key = lines[0]
    secrets = list(webhook_secret or [])
    if webhook_secret_file is not None:
        secrets = _lines_of(webhook_secret_file, "--webhook-secret-file")
    return key, secrets


def _lines_of(path: str, option: str) -> list[str]:
    """The non-blank lines of a file ('-': standard input), stripped."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise ConfigError(f"cannot read {option} {path}: {reason}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


@accounts_app.command("list")
def accounts_list() -> None:
    """Every account: mode, state, masked key, webhook URL, last event received."""
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> tuple[dict[str, Account], dict[str, object]]:
        known = await all_accounts(engine, settings)
        e = ledger_events.c
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(e.account, func.max(e.received_at)).group_by(e.account)
            )
            last = {row[0]: row[1] for row in rows}
        return known, last

    known, last = with_engine(settings, work)
    table = Table()
    for column in ("account", "mode", "state", "API key", "secrets", "webhook path", "last event"):
        table.add_column(column, overflow="fold")  # wrap, never cut: every character counts
    for name, account in sorted(known.items()):
        table.add_row(
            name,
            _mode_label(account),
            "enabled" if account.enabled else "disabled",
            mask(account.api_key),
            "unreadable" if account.unreadable else str(len(account.webhook_secrets)),
            "/webhooks/stripe" if name == "default" else f"/webhooks/stripe/{name}",
            str(last.get(name) or "never"),
        )
    console.print(table)
    unreadable = [account.unreadable for account in known.values() if account.unreadable]
    for reason in unreadable:
        errors.print(f"[red]{reason}; its webhooks get 503[/red]")
    if unreadable:
        raise typer.Exit(1)


@accounts_app.command("disable")
def accounts_disable(name: Annotated[str, typer.Argument()]) -> None:
    """Stop receiving and fetching for an account; its history and figures stay."""
    _set(name, enabled=False)


@accounts_app.command("enable")
def accounts_enable(name: Annotated[str, typer.Argument()]) -> None:
    """Receive and fetch for a disabled account again."""
    _set(name, enabled=True)


def _set(name: str, *, enabled: bool) -> None:
    settings = load_cli_settings()
    try:
        with_engine(settings, lambda engine: set_enabled(engine, name, enabled))
    except ConfigError as exc:
        raise _refuse(exc) from None
    console.print(f"{name} {'enabled' if enabled else 'disabled'}")


@accounts_app.command("new-secret-key")
def accounts_new_secret_key() -> None:
    """Print a fresh LEDGER_SECRET_KEY (keep it in .env: stored secrets need it)."""
    typer.echo(new_secret_key())


@accounts_app.command("rotate-key")
def accounts_rotate_key() -> None:
    """Re-encrypt every stored secret under the first key of LEDGER_SECRET_KEY=NEW,OLD."""
    settings = load_cli_settings()
    count = with_engine(settings, lambda engine: rotate_secret_key(engine, settings))
    console.print(
        f"re-encrypted the secrets of {count} stored account(s) under the first key of "
        "LEDGER_SECRET_KEY; once every process runs with it, LEDGER_SECRET_KEY can hold "
        "that key alone"
    )


def _mode_label(account: Account) -> str:
    if account.mode is None:
        return "test or live"
    return "TEST MODE" if account.mode is Mode.TEST else "live"
