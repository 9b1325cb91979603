"""`stripe-ledger accounts`: several Stripe accounts side by side."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.common import console, errors, load_cli_settings, with_engine
from ledger.accounts import Account, add_account, all_accounts, set_enabled
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
) -> None:
    """Store an account; its key and secrets are encrypted with LEDGER_SECRET_KEY."""
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> Account:
        return await add_account(
            engine, settings, name, api_key=api_key, webhook_secrets=webhook_secret or [], mode=mode
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

    try:
        known, last = with_engine(settings, work)
    except ConfigError as exc:
        raise _refuse(exc) from None
    table = Table()
    for column in ("account", "mode", "state", "API key", "secrets", "webhook path", "last event"):
        table.add_column(column, overflow="fold")  # wrap, never cut: every character counts
    for name, account in sorted(known.items()):
        table.add_row(
            name,
            _mode_label(account),
            "enabled" if account.enabled else "disabled",
            mask(account.api_key),
            str(len(account.webhook_secrets)),
            "/webhooks/stripe" if name == "default" else f"/webhooks/stripe/{name}",
            str(last.get(name) or "never"),
        )
    console.print(table)


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
    """Print a fresh LEDGER_SECRET_KEY (keep it: stored secrets need it to be read)."""
    typer.echo(new_secret_key())


def _mode_label(account: Account) -> str:
    if account.mode is None:
        return "test or live"
    return "TEST MODE" if account.mode is Mode.TEST else "live"
