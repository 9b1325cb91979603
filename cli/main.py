"""`stripe-ledger`: the command line. Parse arguments, call a room, print; nothing more.

Each command opens its own engine in its own event loop (engines are per loop).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.accounts_command import accounts_app
from cli.activity_command import activity_app
from cli.alerts_command import alerts_app
from cli.check_command import check
from cli.common import console, errors, load_cli_settings, with_engine
from cli.db_command import create_service_role_command, warn_when_privileged
from cli.explain import explanation_tables
from cli.figures import fx_app, metrics, settings_app
from cli.replay_command import replay
from cli.serving import run_server
from cli.simulate_command import demo, simulate
from cli.startup import migrate_if_possible
from ledger.accounts import Account, all_accounts
from ledger.event_log import EventLog, LedgerStats
from ledger.logs import configure_logging
from ledger.migrate import upgrade
from ledger.settings import DEFAULT_ACCOUNT, ConfigError, check_webhook_secret
from projections.explanations import explanation_document
from projections.quarantine import all_quarantined, quarantine_document
from projections.queries import customer_story
from projections.runner import ProjectionRunner

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
ledger_app = typer.Typer(no_args_is_help=True, help="The event log itself.")
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")

app.add_typer(settings_app, name="settings")


@app.callback()
def _logs_to_stderr() -> None:
    """Commands print their results on stdout; their log lines go to stderr."""
    configure_logging("warning", stream=sys.stderr)


app.add_typer(fx_app, name="fx")
app.add_typer(accounts_app, name="accounts")
app.add_typer(alerts_app, name="alerts")
app.add_typer(activity_app, name="activity")
app.command()(metrics)
app.command()(replay)
app.command()(check)
app.command()(simulate)
app.command()(demo)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    reconcile: Annotated[
        str | None,
        typer.Option(help="Replay a trailing window in the background: hourly, daily or weekly."),
    ] = None,
) -> None:
    """Apply pending migrations, then serve the webhook endpoint."""
    if reconcile is not None:
        if reconcile not in ("hourly", "daily", "weekly"):
            errors.print("[red]--reconcile must be hourly, daily or weekly[/red]")
            raise typer.Exit(2)
        os.environ["LEDGER_RECONCILE"] = reconcile  # read by each worker process
    settings = load_cli_settings()
    configure_logging(settings.log_level)
    try:
        unusable = migrate_if_possible(settings)
    except ConfigError as exc:
        errors.print(f"[red]cannot start:[/red] {exc}")
        raise typer.Exit(2) from None
    warn_when_privileged(settings)

    async def configured(engine: AsyncEngine) -> dict[str, Account]:
        return await all_accounts(engine, settings)

    if unusable is not None:  # start anyway: 503 until it can be used, then migrate
        errors.print(f"[yellow]serving without the database for now:[/yellow] {unusable}")
    else:
        try:
            if not with_engine(settings, configured):
                check_webhook_secret("")  # no account at all: say what to set
        except ConfigError as exc:
            errors.print(f"[red]cannot start:[/red] {exc}")
            raise typer.Exit(2) from None
    run_server(settings, host=host, port=port, workers=workers)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to LEDGER_DATABASE_URL."""
    settings = load_cli_settings()
    with_engine(settings, upgrade)
    console.print("database is at the newest schema revision")


db_app.command("create-service-role")(create_service_role_command)


@ledger_app.command("stats")
def ledger_stats(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Stored events per account, type and source; positions, times and conflicts."""
    settings = load_cli_settings()
    stats: LedgerStats = with_engine(settings, lambda engine: EventLog(engine).stats())
    held = with_engine(settings, all_quarantined)
    if as_json:
        document = _stats_document(stats) | {"projection_errors": quarantine_document(held)}
        typer.echo(json.dumps(document, indent=2))
        return
    summary = (
        f"{stats.events} events, positions {stats.first_position}..{stats.last_position}, "
        f"received {stats.first_received_at} .. {stats.last_received_at}; "
        f"{stats.conflicts} conflicts kept aside"
    )
    console.print(summary)
    table = Table("account", "type", "source", "events")
    for row in stats.by_account_type_source:
        table.add_row(row.account, row.type, row.source, str(row.events))
    console.print(table)
    if held:
        console.print(f"{len(held)} customers quarantined: their events cannot be derived")
        quarantine = Table("account", "customer", "events", "error", "since")
        for q in held:
            events = ", ".join(q.event_ids[:3]) + (" ..." if len(q.event_ids) > 3 else "")
            quarantine.add_row(q.account, q.customer_id, events, q.error, q.failed_at.isoformat())
        console.print(quarantine)


@app.command()
def rebuild(
    account: Annotated[str, typer.Option(help="The account to rebuild.")] = DEFAULT_ACCOUNT,
) -> None:
    """Derive the read models again from the whole ledger, from position 0."""
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> tuple[int, int]:
        runner = ProjectionRunner(engine)
        customers = await runner.rebuild(account)
        return customers, await runner.position(account)

    customers, position = with_engine(settings, work)
    console.print(f"rebuilt {customers} customers of account {account!r} up to position {position}")


@app.command()
def explain(
    customer: Annotated[str, typer.Option("--customer", help="A Stripe customer id (cus_...).")],
    account: Annotated[str, typer.Option(help="The account.")] = DEFAULT_ACCOUNT,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A customer's MRR history and movements, each with the Stripe events behind it."""
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> Any:
        async with engine.connect() as conn:
            return await customer_story(conn, account, customer)

    intervals, movements, states = with_engine(settings, work)
    if not intervals and not states:
        errors.print(f"no MRR history for {customer} in account {account!r}")
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(explanation_document(intervals, movements, states), indent=2))
        return
    for title, table in explanation_tables(intervals, movements, states):
        console.print(f"[bold]{title}[/bold]")
        console.print(table)


def _stats_document(stats: LedgerStats) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "events": stats.events,
        "conflicts": stats.conflicts,
        "first_position": stats.first_position,
        "last_position": stats.last_position,
        "first_received_at": iso(stats.first_received_at),
        "last_received_at": iso(stats.last_received_at),
        "by_account_type_source": [
            {"account": r.account, "type": r.type, "source": r.source, "events": r.events}
            for r in stats.by_account_type_source
        ],
        "conflicts_by_account": stats.conflicts_by_account,
    }


def run() -> None:
    app()
