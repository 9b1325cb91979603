"""`stripe-ledger check`: is this account's key working, can it read what we need, and are
Stripe's webhook endpoints pointed here with the events we use?"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.schema import ledger_events
from projections import metrics
from projections.account_config import load_config
from projections.fx import MissingRate, load_rates
from projections.runner import ProjectionRunner
from replay.client import StripeApi, StripeForbidden, StripeRefused, StripeUnavailable

# What replay lists; a restricted key needs read access to each.
READS = (
    "customers",
    "subscriptions",
    "invoices",
    "charges",
    "refunds",
    "balance_transactions",
    "invoice_payments",
    "events",
)
# The events the figures are derived from (docs/webhooks.md); `*` covers them all.
NEEDED_EVENTS = (
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.discount.created",
    "customer.discount.updated",
    "customer.discount.deleted",
    "invoice.created",
    "invoice.finalized",
    "invoice.updated",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "charge.succeeded",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
)


@dataclass
class Endpoint:
    url: str
    status: str
    points_here: bool
    missing_events: list[str]


@dataclass
class CheckReport:
    account: str
    mode: str
    key_works: bool = False
    permissions: dict[str, str] = field(default_factory=dict)  # resource -> "ok" or missing
    endpoints: list[Endpoint] = field(default_factory=list)
    last_event: dict[str, str] | None = None
    mrr: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def run_check(
    api: StripeApi,
    engine: AsyncEngine,
    *,
    account: str,
    mode: str,
    public_url: str | None,
    reporting_currency: str,
) -> CheckReport:
    report = CheckReport(account, mode)
    try:
        await _check_stripe(api, report, account, public_url)
    finally:
        await api.close()
    await _check_ledger(engine, report, account, reporting_currency)
    return report


async def _check_stripe(
    api: StripeApi, report: CheckReport, account: str, public_url: str | None
) -> None:
    try:  # the cheap call that proves the key
        await api.get("/v1/customers", {"limit": 1})
        report.key_works = True
    except StripeForbidden:
        report.key_works = True  # the key is real; the permission is reported below
    except (StripeRefused, StripeUnavailable) as exc:
        report.problems.append(f"the API key does not work: {exc}")
        return
    for resource in READS:
        try:
            await api.get(f"/v1/{resource}", {"limit": 1})
            report.permissions[resource] = "ok"
        except StripeForbidden as exc:
            report.permissions[resource] = f"missing {exc.permission or 'read access'}"
            report.problems.append(f"the key cannot read {resource} ({exc.permission})")
    try:
        listed = await api.get("/v1/webhook_endpoints", {"limit": 100})
    except StripeForbidden as exc:
        report.problems.append(f"the key cannot list webhook endpoints ({exc.permission})")
        return
    for endpoint in listed.get("data") or []:
        report.endpoints.append(_endpoint(endpoint, account, public_url))
    if not any(e.points_here and e.status == "enabled" for e in report.endpoints):
        path = _path(account)
        report.problems.append(
            f"no enabled Stripe webhook endpoint points at {public_url or ''}{path}: add one "
            "in the Dashboard (Developers > Webhooks) or with `stripe listen --forward-to`"
        )
    for endpoint in report.endpoints:
        if endpoint.points_here and endpoint.missing_events:
            report.problems.append(
                f"{endpoint.url} does not send {', '.join(endpoint.missing_events)}"
            )


def _path(account: str) -> str:
    return "/webhooks/stripe" if account == "default" else f"/webhooks/stripe/{account}"


def _endpoint(endpoint: dict[str, Any], account: str, public_url: str | None) -> Endpoint:
    url = str(endpoint.get("url") or "")
    here = url.rstrip("/").endswith(_path(account))
    if public_url:
        here = here and url.startswith(public_url.rstrip("/"))
    enabled = set(endpoint.get("enabled_events") or [])
    missing = [] if "*" in enabled else [e for e in NEEDED_EVENTS if e not in enabled]
    return Endpoint(url, str(endpoint.get("status") or "unknown"), here, missing)


async def _check_ledger(
    engine: AsyncEngine, report: CheckReport, account: str, reporting_currency: str
) -> None:
    # The figures must include what was stored since the projections last ran.
    await ProjectionRunner(engine, reporting_currency=reporting_currency).catch_up(account)
    e = ledger_events.c
    async with engine.connect() as conn:
        last = (
            await conn.execute(
                select(e.received_at, e.type, e.event_id)
                .where(e.account == account)
                .order_by(e.position.desc())
                .limit(1)
            )
        ).first()
        if last is not None:
            report.last_event = {
                "received_at": last.received_at.isoformat(),
                "type": last.type,
                "event_id": last.event_id,
            }
        config = await load_config(conn, account, reporting_currency)
        try:
            rates = await load_rates(conn, config.reporting_currency)
            now = datetime.now(UTC)
            report.mrr = (await metrics.snapshot(conn, account, now, config, rates))["mrr"]
        except MissingRate as exc:
            report.problems.append(str(exc))
    if last is None:
        report.problems.append("no event received yet for this account")
