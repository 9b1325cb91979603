"""`stripe-ledger replay` (also installed as `replay`): the backfill, with progress."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.common import console, errors, load_cli_settings, with_engine
from ledger.accounts import all_accounts
from ledger.logs import configure_logging
from ledger.settings import DEFAULT_ACCOUNT, ConfigError, Mode, Settings
from projections.periods import PeriodError, parse_instant
from replay.client import StripeApi
from replay.run import RESOURCES, Replay, ReplayReport, ResourceReport


def replay(
    since: Annotated[str, typer.Option(help="Start of the window (ISO date or time, UTC).")],
    until: Annotated[
        str | None, typer.Option(help="End of the window, exclusive (default now).")
    ] = None,
    account: Annotated[str, typer.Option(help="The account.")] = DEFAULT_ACCOUNT,
) -> None:
    """Backfill from the Stripe API: objects created in the window, Stripe's events of the
    last 30 days, and every invoice still open. Appends only what changed; resumes where an
    interrupted run stopped."""
    settings = load_cli_settings()
    try:
        key, mode = with_engine(settings, lambda engine: credentials(engine, settings, account))
        start = parse_instant(since)
        end = parse_instant(until) if until else datetime.now(UTC)
    except (ConfigError, PeriodError) as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if end <= start:
        errors.print("[red]--until must be after --since[/red]")
        raise typer.Exit(2)
    api = StripeApi(
        key,
        base_url=settings.stripe_api_base,
        requests_per_second=settings.replay_requests_per_second,
    )
    with _progress() as progress:
        tasks = {r.name: progress.add_task(r.name, total=1.0, counts="") for r in RESOURCES}

        started = time.monotonic()

        def show(name: str, report: ResourceReport) -> None:
            rate = report.fetched / max(time.monotonic() - started, 1e-6)
            counts = f"{report.fetched} fetched ({rate:.0f}/s), {report.appended} new"
            progress.update(tasks[name], completed=report.progress, counts=counts)

        async def work(engine: AsyncEngine) -> ReplayReport:
            return await Replay(
                engine,
                api,
                account=account,
                since=start,
                until=end,
                livemode=mode is Mode.LIVE,
                reporting_currency=settings.reporting_currency,
                on_progress=show,
            ).run()

        report = with_engine(settings, work)
    console.print(_summary(report))
    if not report.complete:
        for name, resource in report.resources.items():
            if resource.error:
                errors.print(f"[red]{name}: {resource.error}[/red]")
        errors.print("replay incomplete: run the same command again to resume")
        raise typer.Exit(1)


async def credentials(
    engine: AsyncEngine, settings: Settings, account: str
) -> tuple[str, Mode | None]:
    """The API key and mode to read `account` with: its stored key, else STRIPE_API_KEY
    for the environment's default account."""
    known = (await all_accounts(engine, settings)).get(account)
    if known is not None and not known.enabled:
        raise ConfigError(
            f"account {account!r} is disabled: `stripe-ledger accounts enable {account}`"
        )
    if known is not None and known.unreadable:
        raise ConfigError(known.unreadable)
    if known is not None and known.api_key:
        return known.api_key, known.mode
    if account != DEFAULT_ACCOUNT:
        raise ConfigError(
            f"account {account!r} has no API key: add it with `stripe-ledger accounts add`"
        )
    return settings.api_key(), settings.mode()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:>22}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
        disable=not sys.stderr.isatty(),
    )


def _summary(report: ReplayReport) -> Table:
    rate = report.fetched / report.fetch_seconds if report.fetch_seconds else 0.0
    table = Table(
        "resource",
        "fetched",
        "new or changed",
        title=(
            f"replay: {report.fetched} objects fetched in {report.fetch_seconds:.1f} s "
            f"({rate:.0f} objects/s), projections caught up in {report.catch_up_seconds:.1f} s; "
            f"{report.requests} requests, {report.rate_limited} rate-limited, "
            f"{report.retried} retried"
        ),
    )
    for name, resource in report.resources.items():
        table.add_row(name, str(resource.fetched), str(resource.appended))
    table.add_row(
        "open invoices revisited",
        str(report.late_invoices_checked),
        str(report.late_invoices_changed),
    )
    return table


def main() -> None:
    """The plain `replay` command: the same as `stripe-ledger replay`."""
    configure_logging("warning", stream=sys.stderr)
    typer.run(replay)
