"""`stripe-ledger alerts`: be told when a figure crosses a threshold or changes by a
percentage against the previous period. The server evaluates alerts after new events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.common import console, errors, load_cli_settings, with_engine
from ledger.engine import write_transaction
from ledger.settings import DEFAULT_ACCOUNT
from projections.alerts import (
    CHANGES,
    Alert,
    AlertError,
    add_alert,
    check_alert,
    list_alerts,
    parse_value,
    remove_alert,
    webhook_display,
)

alerts_app = typer.Typer(
    no_args_is_help=True, help="Alerts on figures: thresholds and period-over-period changes."
)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]{escape(message)}[/red]", highlight=False)
    return typer.Exit(2)


@alerts_app.command("add")
def add(
    metric: Annotated[
        str, typer.Option(metavar="KEY", help="A key of `metrics --json`: mrr_end, churn, nrr, ...")
    ],
    above: Annotated[
        str | None,
        typer.Option(metavar="V", help="Fire when the figure is above V (money in major units)."),
    ] = None,
    below: Annotated[
        str | None, typer.Option(metavar="V", help="Fire when the figure is below V.")
    ] = None,
    up: Annotated[
        str | None,
        typer.Option(metavar="PCT", help="Fire when it rose by PCT% or more on the period before."),
    ] = None,
    down: Annotated[
        str | None, typer.Option(metavar="PCT", help="Fire when it fell by PCT% or more.")
    ] = None,
    change: Annotated[
        str | None,
        typer.Option(metavar="PCT", help="Fire when it moved by PCT% or more either way."),
    ] = None,
    period: Annotated[
        str,
        typer.Option(
            metavar="month|week|day", help="The period ending now that the figure covers."
        ),
    ] = "month",
    webhook_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="POST each firing here (a Slack incoming webhook works)."),
    ] = None,
    account: Annotated[str, typer.Option(help="The account.")] = DEFAULT_ACCOUNT,
) -> None:
    """Add an alert. It fires once when its condition becomes true, and again only after
    the condition has been false."""
    given = {
        name: text
        for name, text in (
            ("above", above),
            ("below", below),
            ("up", up),
            ("down", down),
            ("either", change),
        )
        if text is not None
    }
    if len(given) != 1:
        raise _fail("give exactly one of --above, --below, --up, --down, --change")
    ((condition, text),) = given.items()
    try:
        check_alert(metric, condition, period, webhook_url)
        value = parse_value(metric, condition, text)
    except AlertError as exc:
        raise _fail(str(exc)) from None
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> int:
        async with write_transaction(engine) as conn:
            return await add_alert(
                conn, account, metric, condition, value, period, webhook_url, datetime.now(UTC)
            )

    alert_id = with_engine(settings, work)
    unit = "%" if condition in CHANGES else ""
    target = f", to {webhook_display(webhook_url)}" if webhook_url else ""
    console.print(
        f"alert {alert_id}: {metric} {condition} {value:f}{unit} ({period}) "
        f"for account {account!r}{target}",
        markup=False,
        highlight=False,
    )


@alerts_app.command("list")
def list_(
    account: Annotated[
        str | None, typer.Option(help="Only this account's alerts (default: every account).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The alerts, whether each is firing, and when it last fired."""
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> list[Alert]:
        async with engine.connect() as conn:
            return await list_alerts(conn, account)

    found = with_engine(settings, work)
    if as_json:
        typer.echo(json.dumps([_document(alert) for alert in found], indent=2))
        return
    table = Table(
        "id", "account", "metric", "condition", "value", "period", "webhook", "firing", "last fired"
    )
    for alert in found:
        row = _document(alert)
        unit = "%" if alert.condition in CHANGES else ""
        table.add_row(
            str(alert.id),
            alert.account,
            alert.metric,
            alert.condition,
            f"{row['value']}{unit}",
            alert.period,
            row["webhook"] or "—",
            "yes" if alert.firing else "no",
            row["last_fired"] or "never",
        )
    console.print(table)


def _document(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "account": alert.account,
        "metric": alert.metric,
        "condition": alert.condition,
        "value": f"{alert.value:f}",
        "period": alert.period,
        # Never the whole URL: a Slack webhook's path is its secret.
        "webhook": webhook_display(alert.webhook_url) if alert.webhook_url else None,
        "firing": alert.firing,
        "last_fired": alert.last_fired.isoformat() if alert.last_fired else None,
    }


@alerts_app.command("remove")
def remove(alert_id: Annotated[int, typer.Argument(metavar="ID", help="The alert's id.")]) -> None:
    """Remove an alert (its past firings stay on record)."""
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> bool:
        async with write_transaction(engine) as conn:
            return await remove_alert(conn, alert_id)

    if not with_engine(settings, work):
        errors.print(f"no alert {alert_id}", highlight=False)
        raise typer.Exit(1)
    console.print(f"removed alert {alert_id}", highlight=False)
