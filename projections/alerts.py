"""Alerts on the figures of `metrics`: a threshold (`above`/`below` a value) or a change
against the previous period (`up`/`down`/`either` by a percentage). Each alert fires once
per crossing, is logged, and is POSTed as Slack-compatible JSON to its webhook if it has one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import write_transaction
from ledger.logs import get_logger
from ledger.schema import alert_firings, alerts
from projections import metrics
from projections.account_config import AccountConfig, load_config
from projections.fx import MissingRate, RateBook, load_rates
from projections.metric_settings import MetricSettings
from projections.periods import add_months

log = get_logger("alerts")

THRESHOLDS: Final = ("above", "below")
CHANGES: Final = ("up", "down", "either")
PERIODS: Final = ("month", "week", "day")
DELIVERY_TIMEOUT_SECONDS: Final = 5.0

# The scalar keys of the period document (docs/metrics.md), by how their values read.
MONEY_KEYS: Final = (
    "mrr_start", "mrr_end", "arr_end", "committed_mrr_end", "new", "expansion",
    "reactivation", "contraction", "churn", "fx_adjustment", "net_new_mrr", "churned_revenue",
    "arpu", "ltv", "gross_revenue", "refunds", "fees", "net_revenue", "net_volume",
    "tax_collected", "recurring_revenue", "usage_revenue", "one_time_revenue",
    "out_of_band_revenue",
)  # fmt: skip
COUNT_KEYS: Final = (
    "all_customers", "active_customers", "new_customers", "reactivated_customers",
    "churned_customers", "paused_customers", "trialing_customers", "delinquent_customers",
    "paying_subscriptions", "subscriptions_canceled", "subscriptions_incomplete_expired",
    "subscriptions_pending_cancellation", "trials_started", "trials_converted",
)  # fmt: skip
RATE_KEYS: Final = (
    "customer_churn_rate", "customer_churn_rate_stripe30", "nrr", "grr",
    "gross_mrr_churn_rate", "net_mrr_churn_rate", "quick_ratio",
)  # fmt: skip
# Subscription counts by status are one nested object in the document; name each by a path.
STATUS_KEYS: Final = tuple(
    f"subscriptions_by_status.{status}" for status in (*metrics.STATUSES, "canceled")
)
METRIC_KEYS: Final = (*MONEY_KEYS, *COUNT_KEYS, *RATE_KEYS, *STATUS_KEYS)
# The names `metrics --as-of` uses, which a user may well type.
_SNAPSHOT_NAMES: Final = {"mrr": "mrr_end", "arr": "arr_end", "committed_mrr": "committed_mrr_end"}
# Rates that are shares of a whole, so always within [0, 1] (NRR and the quick ratio are not).
_SHARES: Final = frozenset(
    {"customer_churn_rate", "customer_churn_rate_stripe30", "grr", "gross_mrr_churn_rate"}
)


class AlertError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    account: str
    metric: str
    condition: str
    value: Decimal
    period: str
    webhook_url: str | None
    firing: bool
    created_at: datetime
    last_fired: datetime | None = None

    @property
    def rule(self) -> str:
        """`below 150`, `down 20%`: how the alert reads."""
        unit = "%" if self.condition in CHANGES else ""
        return f"{self.condition} {self.value:f}{unit}"


@dataclass(frozen=True, slots=True)
class Firing:
    """One firing: what was observed, the message sent, and how its delivery went."""

    id: int
    alert_id: int
    metric: str
    observed: str
    message: str
    payload: dict[str, Any]
    delivered: bool
    delivery_error: str | None


# --- Checking what the operator asks for ---------------------------------------------------


def parse_value(metric: str, condition: str, text: str) -> Decimal:
    """The exact decimal of a threshold (major units for money, a fraction for rates) or of a
    percentage (`20`, `20%`); raises AlertError saying what is wrong."""
    change = condition in CHANGES
    cleaned = text.strip().removesuffix("%") if change else text.strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise AlertError(f"{text!r} is not a decimal number (e.g. 10000 or 12.50)") from None
    if not value.is_finite():
        raise AlertError(f"{text!r} is not a finite number")
    if change and value <= 0:
        raise AlertError("a change percentage must be greater than 0")
    if not change and metric in _SHARES and not 0 <= value <= 1:
        # A threshold of 5 on a churn rate would never fire: the user meant 5%.
        raise AlertError(f"{metric} is a fraction between 0 and 1: 0.05 is 5%")
    if len(f"{value:f}") > 64:
        raise AlertError(f"{text!r} has too many digits")
    return value


def check_alert(metric: str, condition: str, period: str, webhook_url: str | None) -> None:
    """Raise AlertError naming what is allowed, for the first thing that is not."""
    if metric not in METRIC_KEYS:
        hint = f" (did you mean {_SNAPSHOT_NAMES[metric]}?)" if metric in _SNAPSHOT_NAMES else ""
        raise AlertError(f"unknown metric {metric!r}{hint}; known: {', '.join(METRIC_KEYS)}")
    if condition not in (*THRESHOLDS, *CHANGES):
        raise AlertError(f"condition must be one of {', '.join((*THRESHOLDS, *CHANGES))}")
    if period not in PERIODS:
        raise AlertError(f"period must be one of {', '.join(PERIODS)}")
    if webhook_url is not None:
        parts = urlsplit(webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in webhook_url:
            # The URL itself is not repeated: a Slack webhook URL is a secret.
            raise AlertError("the webhook URL must be an http:// or https:// URL with a host")


def webhook_host(url: str) -> str:
    """The host (and port) of a webhook URL: all that logs may say about it."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def webhook_display(url: str | None) -> str:
    """`https://hooks.slack.com/…`: Slack's path is the secret, so only the host is shown."""
    if url is None:
        return "—"
    parts = urlsplit(url)
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{parts.scheme}://{webhook_host(url)}{'/…' if hidden else ''}"


# --- Storing alerts -------------------------------------------------------------------------


async def add_alert(
    conn: AsyncConnection,
    account: str,
    metric: str,
    condition: str,
    value: Decimal,
    period: str,
    webhook_url: str | None,
    now: datetime,
) -> int:
    check_alert(metric, condition, period, webhook_url)
    result = await conn.execute(
        alerts.insert().values(
            account=account,
            metric=metric,
            condition=condition,
            value=f"{value:f}",
            period=period,
            webhook_url=webhook_url,
            firing=False,
            created_at=now,
        )
    )
    return _new_id(result)


async def list_alerts(conn: AsyncConnection, account: str | None = None) -> list[Alert]:
    """The account's alerts (every account's when None), each with its last firing."""
    a, f = alerts.c, alert_firings.c
    last = (
        select(f.alert_id, func.max(f.fired_at).label("last_fired")).group_by(f.alert_id).subquery()
    )
    query = (
        select(alerts, last.c.last_fired)
        .outerjoin(last, last.c.alert_id == a.id)
        .order_by(a.account, a.id)
    )
    if account is not None:
        query = query.where(a.account == account)
    return [_alert(row._mapping) for row in await conn.execute(query)]


async def remove_alert(conn: AsyncConnection, alert_id: int) -> bool:
    """Delete an alert; its firings stay, as the record of what was sent."""
    result = await conn.execute(delete(alerts).where(alerts.c.id == alert_id))
    return bool(result.rowcount)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has one
    return int(key[0])


def _alert(row: RowMapping) -> Alert:
    return Alert(
        id=int(row["id"]),
        account=row["account"],
        metric=row["metric"],
        condition=row["condition"],
        value=Decimal(row["value"]),
        period=row["period"],
        webhook_url=row["webhook_url"],
        firing=bool(row["firing"]),
        created_at=row["created_at"],
        last_fired=row.get("last_fired"),
    )


# --- Evaluating -----------------------------------------------------------------------------


def period_ending(period: str, end: datetime) -> tuple[datetime, datetime]:
    """The period of this length ending at `end`: [end - 1 period, end)."""
    if period == "month":
        return add_months(end, -1), end
    return end - timedelta(days=7 if period == "week" else 1), end


@dataclass(frozen=True, slots=True)
class _Observation:
    holds: bool
    observed: str  # the figure for a threshold, the percentage change for a change alert
    current: str
    previous: str | None
    start: datetime
    end: datetime


class _Figures:
    """Period documents computed once per range, shared by every alert of one evaluation."""

    def __init__(
        self, conn: AsyncConnection, account: str, config: AccountConfig, rates: RateBook
    ) -> None:
        self.conn, self.account, self.config, self.rates = conn, account, config, rates
        self._documents: dict[tuple[datetime, datetime], dict[str, Any] | None] = {}

    async def figure(self, metric: str, start: datetime, end: datetime) -> Decimal | None:
        if (start, end) not in self._documents:
            self._documents[start, end] = await self._document(start, end)
        document = self._documents[start, end]
        if document is None:
            return None
        head, _, status = metric.partition(".")
        value = document[head][status] if status else document[head]
        return None if value is None else Decimal(value)

    async def _document(self, start: datetime, end: datetime) -> dict[str, Any] | None:
        try:
            return await metrics.period(
                self.conn, self.account, start, end, self.config, self.rates
            )
        except MissingRate as exc:  # the figure is unknown until the rate is imported
            log.warning("alert_figures_unavailable", account=self.account, reason=str(exc))
            return None


async def _observe(alert: Alert, figures: _Figures, now: datetime) -> _Observation | None:
    """Whether the alert's condition holds at `now`; None when its figure is undefined."""
    start, end = period_ending(alert.period, now)
    current = await figures.figure(alert.metric, start, end)
    if current is None:
        return None
    if alert.condition in THRESHOLDS:
        holds = current > alert.value if alert.condition == "above" else current < alert.value
        return _Observation(holds, f"{current}", f"{current}", None, start, end)
    previous_start, _ = period_ending(alert.period, start)
    previous = await figures.figure(alert.metric, previous_start, start)
    if previous is None or previous == 0:  # no base to take a percentage of
        return None
    # Relative to the previous figure's size, so `up` means larger even from a negative base.
    change = (Fraction(current) - Fraction(previous)) / abs(Fraction(previous)) * 100
    limit = Fraction(alert.value)
    holds = {
        "up": change >= limit,
        "down": change <= -limit,
        "either": abs(change) >= limit,
    }[alert.condition]
    return _Observation(holds, _percent(change), f"{current}", f"{previous}", start, end)


def _percent(value: Fraction) -> str:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return f"{exact.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):f}"


@asynccontextmanager
async def _reading(target: AsyncEngine | AsyncConnection) -> AsyncIterator[AsyncConnection]:
    if isinstance(target, AsyncConnection):
        yield target
        return
    async with target.connect() as conn:
        yield conn


@asynccontextmanager
async def _writing(target: AsyncEngine | AsyncConnection) -> AsyncIterator[AsyncConnection]:
    if isinstance(target, AsyncConnection):  # the caller's transaction: it commits
        yield target
        return
    async with write_transaction(target) as conn:
        yield conn


async def evaluate_alerts(
    engine_or_conn: AsyncEngine | AsyncConnection,
    account: str,
    now: datetime,
    *,
    reporting_currency: str = "usd",
    settings: MetricSettings | None = None,
    delivery_timeout: float = DELIVERY_TIMEOUT_SECONDS,
) -> list[Firing]:
    """Evaluate the account's alerts at `now` against the read models as they stand; return
    the firings. Never raises for a delivery. Given an engine, no transaction is open while
    a webhook is called; given a connection, everything runs inside the caller's.

    `settings` fixes the metric settings (as ProjectionRunner's does); by default the
    account's stored settings are used.
    """
    if now.tzinfo is None:
        raise ValueError("evaluate_alerts needs an aware datetime")
    now = now.astimezone(UTC)
    async with _reading(engine_or_conn) as conn:
        found = await list_alerts(conn, account)
        if not found:
            return []
        config = await load_config(conn, account, reporting_currency)
        if settings is not None:
            config = AccountConfig(settings, config.reporting_currency, config.stored)
        rates = await load_rates(conn, config.reporting_currency)
        figures = _Figures(conn, account, config, rates)
        observed = [(alert, await _observe(alert, figures, now)) for alert in found]
    currency = config.reporting_currency.upper()
    pending: list[tuple[Alert, Firing]] = []
    async with _writing(engine_or_conn) as conn:
        for alert, observation in observed:
            if observation is None or observation.holds == alert.firing:
                continue  # undefined figures neither fire nor clear
            # Compare-and-set: of two workers evaluating at once, only one flips the state.
            flipped = await conn.execute(
                alerts.update()
                .where(alerts.c.id == alert.id, alerts.c.firing == alert.firing)
                .values(firing=observation.holds)
            )
            if not flipped.rowcount:
                continue
            if not observation.holds:
                log.info("alert_cleared", account=account, alert_id=alert.id, metric=alert.metric)
                continue
            pending.append((alert, await _record(conn, alert, observation, currency, now)))
    if not pending:
        return []
    results = await _deliver_all(pending, delivery_timeout)
    async with _writing(engine_or_conn) as conn:
        for firing in results:
            await conn.execute(
                alert_firings.update()
                .where(alert_firings.c.id == firing.id)
                .values(delivered=firing.delivered, delivery_error=firing.delivery_error)
            )
    for (alert, _), firing in zip(pending, results, strict=True):
        log.info(
            "alert_fired",
            account=account,
            alert_id=alert.id,
            metric=alert.metric,
            condition=alert.condition,
            value=f"{alert.value:f}",
            observed=firing.observed,
            period=alert.period,
            webhook_host=webhook_host(alert.webhook_url) if alert.webhook_url else None,
            delivered=firing.delivered,
        )
    return results


async def _record(
    conn: AsyncConnection, alert: Alert, seen: _Observation, currency: str, now: datetime
) -> Firing:
    """The firing row, written before delivery so a crash mid-call leaves a record."""
    message = _message(alert, seen, currency)
    payload: dict[str, Any] = {
        "text": message,
        "account": alert.account,
        "alert_id": alert.id,
        "metric": alert.metric,
        "condition": alert.condition,
        "value": f"{alert.value:f}",
        "observed": seen.observed,
        "period": alert.period,
        "period_start": seen.start.isoformat(),
        "period_end": seen.end.isoformat(),
        "fired_at": now.isoformat(),
    }
    if alert.metric in MONEY_KEYS:
        payload["currency"] = currency.lower()
    if seen.previous is not None:
        payload |= {"current": seen.current, "previous": seen.previous}
    result = await conn.execute(
        alert_firings.insert().values(
            alert_id=alert.id,
            account=alert.account,
            fired_at=now,
            metric=alert.metric,
            observed=seen.observed,
            message=message,
            delivered=False,
            delivery_error=None,
        )
    )
    return Firing(
        id=_new_id(result),
        alert_id=alert.id,
        metric=alert.metric,
        observed=seen.observed,
        message=message,
        payload=payload,
        delivered=False,
        delivery_error=None,
    )


def _message(alert: Alert, seen: _Observation, currency: str) -> str:
    """One line a person reads in Slack."""

    def amount(text: str) -> str:
        return f"{text} {currency}" if alert.metric in MONEY_KEYS else text

    window = f"{alert.period} ending {seen.end:%Y-%m-%d %H:%M} UTC"
    if seen.previous is None:
        limit = amount(f"{alert.value:f}")
        what = f"{alert.metric} is {amount(seen.current)}, {alert.condition} {limit}"
    else:
        direction = "up" if not seen.observed.startswith("-") else "down"
        what = (
            f"{alert.metric} {direction} {seen.observed.lstrip('-')}% "
            f"({amount(seen.previous)} → {amount(seen.current)}) against the {alert.period} "
            f"before; alert: {alert.rule}"
        )
    return f"stripe-ledger [{alert.account}]: {what} ({window})"


async def _deliver_all(
    pending: list[tuple[Alert, Firing]], delivery_timeout: float
) -> list[Firing]:
    async with httpx.AsyncClient(
        timeout=delivery_timeout, headers={"user-agent": "stripe-ledger-alerts"}
    ) as client:
        return list(
            await asyncio.gather(*(_deliver(client, alert, firing) for alert, firing in pending))
        )


async def _deliver(client: httpx.AsyncClient, alert: Alert, firing: Firing) -> Firing:
    """POST the firing; a failure is returned in the firing and logged, never raised."""
    url = alert.webhook_url
    if url is None:
        return firing
    try:
        response = await client.post(url, json=firing.payload)
        error = None if response.is_success else f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        # httpx may quote the URL in its message; the URL's path is the secret.
        detail = _redact(str(exc), url)
        error = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if error is None:
        return _delivered(firing, None)
    log.warning(
        "alert_delivery_failed",
        account=alert.account,
        alert_id=alert.id,
        webhook_host=webhook_host(url),
        error=error,
    )
    return _delivered(firing, error)


def _delivered(firing: Firing, error: str | None) -> Firing:
    return replace(firing, delivered=error is None, delivery_error=error)


def _redact(text: str, url: str) -> str:
    """`text` without the URL's path, query or fragment, however httpx spelled them."""
    parts = urlsplit(url)
    for secret in (url, str(httpx.URL(url)), parts.path, parts.query, parts.fragment):
        if secret and secret != "/":
            text = text.replace(secret, "…")
    return text
