"""`stripe-ledger activity export`: the activity stream as CSV or JSON lines on stdout."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.common import errors, load_cli_settings, with_engine
from ledger.settings import DEFAULT_ACCOUNT
from projections.activity import ExportFormat, export_activity
from projections.periods import PeriodError, parse_instant
from projections.runner import ProjectionRunner

activity_app = typer.Typer(
    no_args_is_help=True,
    help="Billings, upgrades, downgrades, cancellations and reactivations, per customer.",
)


class Output(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


@activity_app.command("export")
def export(
    since: Annotated[str, typer.Option(help="From this time on (ISO date or time, UTC).")],
    account: Annotated[str, typer.Option(help="The account.")] = DEFAULT_ACCOUNT,
    fmt: Annotated[
        Output, typer.Option("--format", help="csv (with a header) or jsonl.")
    ] = Output.csv,
) -> None:
    """Every activity row from --since on, oldest first: money in major units, times in
    ISO 8601 UTC, each row with the Stripe events behind it."""
    settings = load_cli_settings()
    try:
        start = parse_instant(since)
    except PeriodError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None

    async def work(engine: AsyncEngine) -> int:
        # Like `metrics`: export what the ledger holds now, not what the runner last saw.
        runner = ProjectionRunner(engine, reporting_currency=settings.reporting_currency)
        await runner.catch_up(account)
        async with engine.connect() as conn:
            kind: ExportFormat = "jsonl" if fmt is Output.jsonl else "csv"
            return await export_activity(conn, account, start, kind, sys.stdout)

    with_engine(settings, work)
