"""`stripe-ledger simulate` and `stripe-ledger demo`: a realistic simulated Stripe account."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.common import console, errors, load_cli_settings, with_engine
from ledger.engine import create_engine, write_transaction
from ledger.migrate import upgrade
from ledger.settings import DEFAULT_ACCOUNT, ConfigError
from projections.fx import store_rates
from projections.runner import ProjectionRunner
from simulator.demo import (
    SHOWN_MONTHS,
    NotADemoLedger,
    build_demo,
    history_ending_today,
    last_months,
    mark_demo_ledger,
    replace_demo_ledger,
)
from simulator.fx_rates import daily_rates
from simulator.life import START, AccountLife
from simulator.outputs import Delivered, append_to_ledger, post_signed, write_jsonl
from simulator.stripe_account import LAYOUTS, Layout


def _layout(value: str) -> Layout:
    for layout in LAYOUTS:
        if value in (layout, layout.split(".")[-1]):
            return layout
    raise typer.BadParameter(f"one of {', '.join(LAYOUTS)}")


def simulate(
    customers: Annotated[int, typer.Option(min=0, help="Customers who sign up.")] = 100,
    months: Annotated[int, typer.Option(min=1, help="Months of history.")] = 12,
    seed: Annotated[int, typer.Option(help="The same seed gives the same events.")] = 1,
    start: Annotated[
        str, typer.Option(help="The history's first day (UTC).")
    ] = START.date().isoformat(),
    api_version: Annotated[
        str, typer.Option(help="Field layout: 2025-03-31.basil or 2020-03-02.")
    ] = "2025-03-31.basil",
    jsonl: Annotated[
        str | None, typer.Option(help="Write the events as JSON lines to this file ('-': stdout).")
    ] = None,
    into_ledger: Annotated[
        bool, typer.Option("--into-ledger", help="Append to the configured ledger directly.")
    ] = False,
    post: Annotated[
        str | None,
        typer.Option(help="POST each event, signed, to this webhook URL of a running server."),
    ] = None,
    account: Annotated[str, typer.Option(help="The ledger account (--into-ledger).")] = (
        DEFAULT_ACCOUNT
    ),
    concurrency: Annotated[int, typer.Option(min=1, help="Parallel POSTs (--post).")] = 8,
    rates: Annotated[
        Path | None, typer.Option(help="Also write the simulated USD exchange rates as CSV.")
    ] = None,
) -> None:
    """Simulate a Stripe account: signups with and without trials, monthly, yearly and weekly
    plans, seats on tiered prices, coupons, upgrades and downgrades with prorations, failed
    payments, cancellations, refunds, one-time items, USD, EUR and GBP. Exactly one of
    --jsonl, --into-ledger or --post says where the events go."""
    if sum((jsonl is not None, into_ledger, post is not None)) != 1:
        errors.print("[red]give exactly one of --jsonl, --into-ledger or --post[/red]")
        raise typer.Exit(2)
    try:
        first = datetime.fromisoformat(start).replace(tzinfo=UTC)
    except ValueError:
        errors.print(f"[red]--start {start!r} is not a date (YYYY-MM-DD)[/red]")
        raise typer.Exit(2) from None
    life = AccountLife(customers, months, seed, _layout(api_version), start=first)
    fx_rows = daily_rates(first.date(), life.end.date(), seed)
    if rates is not None:
        with rates.open("w") as csv_file:
            csv_file.write("date,currency,rate\n")
            csv_file.writelines(f"{day},{currency},{rate}\n" for day, currency, rate in fx_rows)
    if jsonl is not None:
        if jsonl == "-":
            count = write_jsonl(life, sys.stdout.buffer)
        else:
            with open(jsonl, "wb") as out:
                count = write_jsonl(life, out)
        errors.print(f"wrote {count} events")
        return
    if post is not None:
        try:
            secret = load_cli_settings().webhook_secrets()[0]
        except ConfigError as exc:
            errors.print(f"[red]{exc}[/red] (the deliveries are signed with it)")
            raise typer.Exit(2) from None
        _report(asyncio.run(post_signed(life, post, secret, concurrency=concurrency)))
        return
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> Delivered:
        await upgrade(engine)
        delivered = await append_to_ledger(life, engine, account)
        if settings.reporting_currency == "usd":
            async with write_transaction(engine) as conn:
                await store_rates(conn, "usd", fx_rows)
        await ProjectionRunner(engine, reporting_currency=settings.reporting_currency).catch_up(
            account
        )
        return delivered

    _report(with_engine(settings, work))


def _report(delivered: Delivered) -> None:
    parts = [f"{delivered.stored} stored", f"{delivered.duplicates} already there"]
    if delivered.refused:
        parts.append(f"{delivered.refused} refused")
    if delivered.skipped:
        parts.append(f"{delivered.skipped} snapshot records not sent (a backfill adds them)")
    errors.print(", ".join(parts))
    if delivered.refused:
        raise typer.Exit(1)


_DEMO_WIDTH = 150


def demo(
    customers: Annotated[int, typer.Option(min=1, help="Customers who sign up.")] = 500,
    months: Annotated[int, typer.Option(min=13, help="Months of history.")] = 18,
    seed: Annotated[int, typer.Option(help="The same seed gives the same account.")] = 1,
    database: Annotated[
        Path | None,
        typer.Option(help="The demo's own SQLite file (default: LEDGER_DATA_DIR/demo.sqlite3)."),
    ] = None,
) -> None:
    """Simulate an account up to today into a fresh SQLite ledger of its own, build the
    projections, and print the last 12 months: MRR, movements, churn and NRR."""
    settings = load_cli_settings()
    path = (database or settings.ledger_data_dir / "demo.sqlite3").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        replace_demo_ledger(path)  # the demo starts from nothing every time
    except NotADemoLedger as exc:
        errors.print(
            f"[red]refusing to replace {path}: {exc}; the demo only replaces a ledger it "
            "made: give another --database[/red]",
            highlight=False,
        )
        raise typer.Exit(2) from None
    mark_demo_ledger(path)
    history = history_ending_today(customers, months, seed, datetime.now(UTC))
    errors.print(
        f"simulating {customers} customers from {history.start.date()} to {history.end.date()}"
        f" into {path}"
    )

    async def main() -> list[dict[str, Any]]:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            delivered = await build_demo(
                engine,
                history,
                DEFAULT_ACCOUNT,
                progress=lambda n: errors.print(f"  {n} events", highlight=False),
            )
            errors.print(f"stored {delivered.stored} events; projections built")
            return await last_months(engine, DEFAULT_ACCOUNT, history.end)
        finally:
            await engine.dispose()

    # Wider than a piped 80 columns: a cut-off figure would be worse than a wrapped line.
    wide = Console(soft_wrap=True, width=max(console.width, _DEMO_WIDTH))
    wide.print(demo_table(asyncio.run(main())))
    console.print(
        f"Explore it: LEDGER_DATABASE_URL=sqlite+aiosqlite:///{path} "
        "stripe-ledger metrics --period last-month",
        highlight=False,
    )


def demo_table(documents: list[dict[str, Any]]) -> Table:
    currency = documents[0]["currency"].upper() if documents else ""
    table = Table(
        "month",
        "MRR",
        "new",
        "expansion",
        "reactivation",
        "contraction",
        "churn",
        "net new",
        "FX",
        "customers",
        "customer churn",
        "NRR",
        title=f"The last {SHOWN_MONTHS} months ({currency})",
    )
    for doc in documents:
        table.add_row(
            doc["period_start"][:7],
            _money(doc["mrr_end"]),
            _money(doc["new"]),
            _money(doc["expansion"]),
            _money(doc["reactivation"]),
            _money(doc["contraction"]),
            _money(doc["churn"]),
            _money(doc["net_new_mrr"]),
            _money(doc["fx_adjustment"]),
            str(doc["active_customers"]),
            _percent(doc["customer_churn_rate"]),
            _percent(doc["nrr"]),
        )
    return table


def _money(value: str | None) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


def _percent(value: str | None) -> str:
    return "—" if value is None else f"{Decimal(value) * 100:.1f}%"
