"""`stripe-ledger check`: prove an account's key, permissions and webhook endpoints."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.common import console, errors, load_cli_settings, with_engine
from cli.replay_command import credentials
from ledger.secrets import mask
from ledger.settings import DEFAULT_ACCOUNT, ConfigError, Mode
from projections.quarantine import all_quarantined, quarantine_problems
from replay.check import CheckReport, run_check
from replay.client import StripeApi


def check(
    account: Annotated[str, typer.Option(help="The account.")] = DEFAULT_ACCOUNT,
    url: Annotated[
        str | None, typer.Option(help="This service's public address, e.g. https://ledger.acme.io")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One cheap API call to prove the key, the permissions replay needs, the webhook
    endpoints Stripe has and whether they point here, the last event, the current MRR."""
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> tuple[CheckReport, str]:
        key, mode = await credentials(engine, settings, account)
        api = StripeApi(key, base_url=settings.stripe_api_base, requests_per_second=10)
        label = "live" if mode is Mode.LIVE else "TEST MODE"
        report = await run_check(
            api,
            engine,
            account=account,
            mode=label,
            public_url=url,
            reporting_currency=settings.reporting_currency,
        )
        report.problems += quarantine_problems(await all_quarantined(engine, account), account)
        return report, mask(key)

    try:
        report, masked = with_engine(settings, work)
    except ConfigError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({**asdict(report), "api_key": masked, "ok": report.ok}, indent=2))
    else:
        _print(report, masked)
    if not report.ok:
        raise typer.Exit(1)


def _print(report: CheckReport, masked: str) -> None:
    table = Table("check", "result", title=f"account {report.account} ({report.mode})")
    table.add_row("API key", f"{masked}: {'works' if report.key_works else 'REFUSED'}")
    for resource, state in report.permissions.items():
        table.add_row(f"read {resource}", state)
    for endpoint in report.endpoints:
        here = "points here" if endpoint.points_here else "elsewhere"
        events = (
            "all needed events"
            if not endpoint.missing_events
            else (f"missing {len(endpoint.missing_events)} events")
        )
        table.add_row(f"endpoint {endpoint.url}", f"{endpoint.status}, {here}, {events}")
    last = report.last_event
    table.add_row("last event", f"{last['type']} at {last['received_at']}" if last else "none yet")
    table.add_row("current MRR", report.mrr or "—")
    console.print(table)
    for problem in report.problems:
        errors.print(f"[yellow]- {problem}[/yellow]")
