"""`stripe-ledger metrics`, `settings` and `fx`: the figures and what shapes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.common import console, errors, load_cli_settings, with_engine
from ledger.engine import write_transaction
from ledger.schema import projection_positions
from ledger.settings import DEFAULT_ACCOUNT
from projections.account_config import SETTING_NAMES, SettingError, load_config, store_setting
from projections.fx import MissingRate, read_rates_csv, store_rates
from projections.periods import PeriodError, parse_instant, requested_ranges
from projections.reports import metric_documents
from projections.runner import ProjectionRunner

settings_app = typer.Typer(no_args_is_help=True, help="Metric settings of an account.")
fx_app = typer.Typer(no_args_is_help=True, help="Exchange rates into the reporting currency.")

Account = Annotated[str, typer.Option(help="The account.")]


def metrics(
    period: Annotated[
        str | None, typer.Option(help="2025-01, 2025-Q1, 2025, last-month...")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="Start (ISO date or time).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive.")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="A snapshot at this instant.")
    ] = None,
    by_month: Annotated[bool, typer.Option("--by-month", help="One result per month.")] = False,
    as_reported: Annotated[
        bool, typer.Option("--as-reported", help="As known at the freeze time, not restated.")
    ] = False,
    frozen_at: Annotated[
        str | None, typer.Option("--frozen-at", help="Freeze time (default: each period's end).")
    ] = None,
    account: Account = DEFAULT_ACCOUNT,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """MRR, movements, customers, churn, retention and revenue for a period (or --as-of)."""
    settings = load_cli_settings()
    try:
        ranges = [] if as_of else requested_ranges(period, start, end, by_month, datetime.now(UTC))
        instant = parse_instant(as_of) if as_of else None
        freeze = parse_instant(frozen_at) if frozen_at else None
    except PeriodError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None

    async def work(engine: AsyncEngine) -> list[dict[str, Any]]:
        return await metric_documents(
            engine,
            settings,
            account,
            ranges=ranges,
            instant=instant,
            reported=as_reported,
            frozen_at=freeze,
        )

    try:
        documents = with_engine(settings, work)
    except MissingRate as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        payload: Any = documents if by_month else documents[0]
        typer.echo(json.dumps(payload, indent=2))
        return
    for document in documents:
        console.print(_table(document))


def _table(document: dict[str, Any]) -> Table:
    title = (
        f"as of {document['as_of']}"
        if "as_of" in document
        else f"{document['period_start']} .. {document['period_end']}"
    )
    label = " — TEST MODE" if document.get("mode") == "test" else ""
    table = Table("figure", "value", title=f"{title} ({document['currency']}){label}")
    for key, value in document.items():
        if key in ("period_start", "period_end", "as_of", "currency", "mode"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items() if v)
        table.add_row(key, "—" if value is None else str(value))
    return table


@settings_app.command("show")
def settings_show(account: Account = DEFAULT_ACCOUNT) -> None:
    """The settings in force, and which of them are stored."""
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> Any:
        async with engine.connect() as conn:
            return await load_config(conn, account, settings.reporting_currency)

    config = with_engine(settings, work)
    table = Table("setting", "value", "source")
    table.add_row(
        "profile", config.stored.get("profile", "default"), _source(config.stored, "profile")
    )
    table.add_row(
        "reporting_currency",
        config.reporting_currency,
        _source(config.stored, "reporting_currency"),
    )
    for name, value in vars_of(config.settings).items():
        table.add_row(
            name,
            str(value).lower() if isinstance(value, bool) else str(value),
            _source(config.stored, name),
        )
    console.print(table)


def vars_of(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def _source(stored: dict[str, str], name: str) -> str:
    return "stored" if name in stored else "default"


@settings_app.command("set")
def settings_set(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SETTING_NAMES)}.")],
    value: Annotated[str, typer.Argument(help="The new value.")],
    account: Account = DEFAULT_ACCOUNT,
) -> None:
    """Store a setting, then rebuild the read models that depend on it."""
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> int:
        async with write_transaction(engine) as conn:
            await store_setting(conn, account, name, value)
        return await ProjectionRunner(
            engine, reporting_currency=settings.reporting_currency
        ).rebuild(account)

    try:
        customers = with_engine(settings, work)
    except SettingError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"{name} = {value} for account {account!r}; rebuilt {customers} customers")


@fx_app.command("import")
def fx_import(
    path: Annotated[Path, typer.Argument(help="A CSV file with columns date,currency,rate.")],
    reporting_currency: Annotated[
        str | None, typer.Option(help="The currency the rates convert into.")
    ] = None,
) -> None:
    """Load daily rates: `rate` is the value of one unit of `currency` in the reporting
    currency. Monthly figures are then recomputed."""
    settings = load_cli_settings()
    target = (reporting_currency or settings.reporting_currency).lower()
    try:
        rows = read_rates_csv(path)
    except (OSError, ValueError) as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None

    async def work(engine: AsyncEngine) -> int:
        async with write_transaction(engine) as conn:
            count = await store_rates(conn, target, rows)
            accounts = (await conn.scalars(select(projection_positions.c.account).distinct())).all()
        runner = ProjectionRunner(engine, reporting_currency=settings.reporting_currency)
        for account in accounts:
            await runner.refresh_monthly(account)
        return count

    console.print(f"imported {with_engine(settings, work)} rates into {target.upper()}")
