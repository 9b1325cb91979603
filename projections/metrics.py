"""The period figures of METRICS.md, computed from the read models for any [t0, t1).

Everything is summed exactly (Fractions of minor units, converted to the reporting
currency at the rate of each figure's day) and rounded half-even only when the document
is written: money as decimal strings in major units, rates with 4 decimals, counts as
integers, None where a figure is undefined (a zero denominator).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.schema import (
    customer_mrr,
    customers,
    disputes,
    invoices,
    payments,
    refunds,
    subscription_states,
)
from projections.account_config import AccountConfig
from projections.fx import RateBook
from projections.money import from_text, major_units
from projections.queries import MovementRow, movements_between
from projections.routing import GUEST

STATUSES = ("trialing", "active", "past_due", "unpaid", "paused", "incomplete")
MOVEMENT_KINDS = ("new", "expansion", "reactivation", "contraction", "churn")
_STAYING = {"active", "paused", "free", "trialing"}  # customer states that are not churned
_REFUNDED = {"succeeded", "pending"}
STRIPE30_WINDOW = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class CustomerAt:
    mrr: Fraction
    currency: str
    state: str


def rate_text(value: Fraction | None) -> str | None:
    if value is None:
        return None
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return f"{exact.quantize(Decimal('0.0001'), rounding=ROUND_HALF_EVEN):f}"


def _ratio(numerator: Fraction, denominator: Fraction) -> Fraction | None:
    return numerator / denominator if denominator else None


def _in_force(table: Any, at: datetime) -> Any:
    # "At t" applies every change effective before t: the row with valid_from < t <= valid_to.
    return and_(table.c.valid_from < at, or_(table.c.valid_to.is_(None), table.c.valid_to >= at))


async def customers_at(conn: AsyncConnection, account: str, at: datetime) -> dict[str, CustomerAt]:
    c = customer_mrr.c
    rows = await conn.execute(
        select(c.customer_id, c.mrr_exact, c.currency, c.state).where(
            c.account == account, _in_force(customer_mrr, at)
        )
    )
    return {r.customer_id: CustomerAt(from_text(r.mrr_exact), r.currency, r.state) for r in rows}


async def _subscriptions_at(conn: AsyncConnection, account: str, at: datetime) -> list[Any]:
    s = subscription_states.c
    query = select(
        s.customer_id, s.subscription_id, s.status, s.currency, s.mrr_exact, s.pending_cancellation
    ).where(s.account == account, _in_force(subscription_states, at))
    return list((await conn.execute(query)).all())


class _Figures:
    """Money accumulated in the reporting currency."""

    def __init__(self, rates: RateBook) -> None:
        self.rates = rates
        self.money: dict[str, Fraction] = defaultdict(Fraction)

    def add(self, key: str, amount: Fraction | int, currency: str, at: datetime) -> None:
        self.money[key] += self.rates.convert(amount, currency, at)


def _mrr(states: dict[str, CustomerAt], rates: RateBook, at: datetime) -> Fraction:
    return sum((rates.convert(s.mrr, s.currency, at) for s in states.values()), Fraction(0))


async def snapshot(
    conn: AsyncConnection, account: str, at: datetime, config: AccountConfig, rates: RateBook
) -> dict[str, Any]:
    """Figures at one instant (`metrics --as-of`)."""
    states = await customers_at(conn, account, at)
    subscriptions = await _subscriptions_at(conn, account, at)
    mrr = _mrr(states, rates, at)
    committed = mrr - _pending_cancellation(subscriptions, rates, at)
    currency = config.reporting_currency
    return {
        "as_of": at.isoformat(),
        "currency": currency,
        "mrr": major_units(mrr, currency),
        "arr": major_units(12 * mrr, currency),
        "committed_mrr": major_units(committed, currency),
        "all_customers": await _all_customers(conn, account, at),
        "active_customers": sum(1 for s in states.values() if s.mrr > 0),
        "paused_customers": sum(1 for s in states.values() if s.state == "paused"),
        "trialing_customers": sum(1 for s in states.values() if s.state == "trialing"),
        "delinquent_customers": _delinquent(subscriptions),
        "paying_subscriptions": sum(1 for s in subscriptions if from_text(s.mrr_exact) > 0),
        "subscriptions_pending_cancellation": sum(
            1 for s in subscriptions if s.pending_cancellation
        ),
        "subscriptions_by_status": _by_status(subscriptions),
    }


def _pending_cancellation(subscriptions: list[Any], rates: RateBook, at: datetime) -> Fraction:
    return sum(
        (
            rates.convert(from_text(s.mrr_exact), s.currency, at)
            for s in subscriptions
            if s.pending_cancellation
        ),
        Fraction(0),
    )


def _delinquent(subscriptions: list[Any]) -> int:
    return len(
        {
            s.customer_id
            for s in subscriptions
            if s.status == "past_due" and from_text(s.mrr_exact) > 0
        }
    )


def _by_status(subscriptions: list[Any], canceled: int | None = None) -> dict[str, int]:
    counts = Counter(s.status for s in subscriptions if s.status in STATUSES)
    by_status = {status: counts.get(status, 0) for status in STATUSES}
    if canceled is not None:
        by_status["canceled"] = canceled
    return by_status


async def _all_customers(conn: AsyncConnection, account: str, at: datetime) -> int:
    c = customers.c
    rows = await conn.execute(
        select(c.customer_id).where(
            c.account == account,
            c.customer_id != GUEST,
            c.first_seen < at,
            or_(c.deleted_at.is_(None), c.deleted_at >= at),
        )
    )
    return len(rows.all())


async def period(
    conn: AsyncConnection,
    account: str,
    start: datetime,
    end: datetime,
    config: AccountConfig,
    rates: RateBook,
) -> dict[str, Any]:
    """Every figure of METRICS.md's "Period figures" for [start, end)."""
    currency = config.reporting_currency
    at_start = await customers_at(conn, account, start)
    at_end = await customers_at(conn, account, end)
    moves = await movements_between(conn, account, start, end)
    subscriptions = await _subscriptions_at(conn, account, end)
    figures = _Figures(rates)
    for move in moves:
        figures.add(move.kind, move.amount, move.currency, move.effective_at)
    m = figures.money
    mrr_start, mrr_end = _mrr(at_start, rates, start), _mrr(at_end, rates, end)
    net_new = m["new"] + m["expansion"] + m["reactivation"] - m["contraction"] - m["churn"]
    committed = mrr_end - _pending_cancellation(subscriptions, rates, end)

    cohort_rate = _cohort_churn(at_start, at_end)
    stripe30 = await _stripe30_churn(conn, account, end)
    nrr, grr = _retention(at_start, at_end, rates, start)
    active = sum(1 for s in at_end.values() if s.mrr > 0)
    month_or_longer = end - start >= timedelta(days=28)
    arpu = mrr_end / active if active and month_or_longer else None
    churn_for_ltv = cohort_rate if config.settings.customer_churn_formula == "cohort" else stripe30
    ltv = arpu / churn_for_ltv if arpu is not None and churn_for_ltv else None
    gained = m["new"] + m["expansion"] + m["reactivation"]
    lost = m["churn"] + m["contraction"]
    cash = await _cash(conn, account, start, end, rates)
    trials_started, trials_converted = await _trials(conn, account, start, end)

    def money(value: Fraction | None) -> str | None:
        return major_units(value, currency) if value is not None else None

    return {
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "currency": currency,
        "mrr_start": money(mrr_start),
        "mrr_end": money(mrr_end),
        "arr_end": money(12 * mrr_end),
        "committed_mrr_end": money(committed),
        **{kind: money(m[kind]) for kind in MOVEMENT_KINDS},
        "fx_adjustment": money(mrr_end - mrr_start - net_new),
        "net_new_mrr": money(net_new),
        "churned_revenue": money(lost),
        "all_customers": await _all_customers(conn, account, end),
        "active_customers": active,
        "new_customers": _customers_with(moves, "new"),
        "reactivated_customers": _customers_with(moves, "reactivation"),
        "churned_customers": len(
            {
                mv.customer_id
                for mv in moves
                if mv.kind == "churn" and _state(at_end, mv.customer_id) not in _STAYING
            }
        ),
        "paused_customers": sum(1 for s in at_end.values() if s.state == "paused"),
        "trialing_customers": sum(1 for s in at_end.values() if s.state == "trialing"),
        "delinquent_customers": _delinquent(subscriptions),
        "subscriptions_by_status": _by_status(
            subscriptions, await _canceled(conn, account, start, end)
        ),
        "paying_subscriptions": sum(1 for s in subscriptions if from_text(s.mrr_exact) > 0),
        "subscriptions_canceled": await _canceled(conn, account, start, end),
        "subscriptions_incomplete_expired": await _canceled(
            conn, account, start, end, status="incomplete_expired"
        ),
        "subscriptions_pending_cancellation": sum(
            1 for s in subscriptions if s.pending_cancellation
        ),
        "trials_started": trials_started,
        "trials_converted": trials_converted,
        "customer_churn_rate": rate_text(cohort_rate),
        "customer_churn_rate_stripe30": rate_text(stripe30),
        "nrr": rate_text(nrr),
        "grr": rate_text(grr),
        "gross_mrr_churn_rate": rate_text(1 - grr if grr is not None else None),
        "net_mrr_churn_rate": rate_text(1 - nrr if nrr is not None else None),
        "arpu": money(arpu),
        "ltv": money(ltv),
        "quick_ratio": rate_text(_ratio(gained, lost)),
        **{key: money(value) for key, value in cash.items()},
    }


def _state(states: dict[str, CustomerAt], customer_id: str) -> str:
    found = states.get(customer_id)
    return found.state if found is not None else "inactive"


def _customers_with(moves: list[MovementRow], kind: str) -> int:
    return len({m.customer_id for m in moves if m.kind == kind})


def _cohort_churn(
    at_start: dict[str, CustomerAt], at_end: dict[str, CustomerAt]
) -> Fraction | None:
    """Of the customers active (or paused) at t0, the share churned at t1."""
    cohort = [c for c, s in at_start.items() if s.mrr > 0 or s.state == "paused"]
    churned = [c for c in cohort if _state(at_end, c) not in _STAYING]
    return Fraction(len(churned), len(cohort)) if cohort else None


async def _stripe30_churn(conn: AsyncConnection, account: str, at: datetime) -> Fraction | None:
    """Stripe's formula: churn events in the last 30 days over (customers active 30 days
    ago + new customers in the window)."""
    window_start = at - STRIPE30_WINDOW
    moves = await movements_between(conn, account, window_start, at)
    earlier = await customers_at(conn, account, window_start)
    base = sum(1 for s in earlier.values() if s.mrr > 0) + sum(1 for m in moves if m.kind == "new")
    churned = sum(1 for m in moves if m.kind == "churn")
    return Fraction(churned, base) if base else None


def _retention(
    at_start: dict[str, CustomerAt],
    at_end: dict[str, CustomerAt],
    rates: RateBook,
    start: datetime,
) -> tuple[Fraction | None, Fraction | None]:
    """NRR and GRR of the t0 revenue cohort, in constant currency (t0 rates)."""
    base = net = gross = Fraction(0)
    for customer_id, then in at_start.items():
        if then.mrr <= 0:
            continue
        before = rates.convert(then.mrr, then.currency, start)
        now = at_end.get(customer_id)
        after = rates.convert(now.mrr, now.currency, start) if now is not None else Fraction(0)
        base += before
        net += after
        gross += min(after, before)
    return _ratio(net, base), _ratio(gross, base)


async def _canceled(
    conn: AsyncConnection, account: str, start: datetime, end: datetime, status: str = "canceled"
) -> int:
    """Subscriptions that reached `status` (an end state) during the period."""
    s = subscription_states.c
    rows = await conn.execute(
        select(s.subscription_id)
        .where(
            s.account == account,
            s.status == status,
            s.valid_from >= start,
            s.valid_from < end,
        )
        .distinct()
    )
    return len(rows.all())


async def _trials(
    conn: AsyncConnection, account: str, start: datetime, end: datetime
) -> tuple[int, int]:
    """Trials that began in the period, and trials that turned into a paying status in it."""
    s = subscription_states.c
    rows = await conn.execute(
        select(s.subscription_id, s.valid_from, s.valid_to, s.status, s.trialing)
        .where(
            s.account == account,
            s.valid_from < end,
            s.subscription_id.in_(
                select(s.subscription_id).where(s.account == account, s.trialing.is_(True))
            ),
        )
        .order_by(s.subscription_id, s.valid_from)
    )
    started: set[str] = set()
    converted: set[str] = set()
    previous: Any = None
    seen_trial: set[str] = set()
    for row in rows:
        if row.trialing and row.subscription_id not in seen_trial:
            seen_trial.add(row.subscription_id)
            if start <= row.valid_from < end:
                started.add(row.subscription_id)
        if (
            previous is not None
            and previous.subscription_id == row.subscription_id
            and previous.trialing
            and not row.trialing
            and row.status in ("active", "past_due")
            and start <= row.valid_from < end
        ):
            converted.add(row.subscription_id)
        previous = row
    return len(started), len(converted)


async def _cash(
    conn: AsyncConnection, account: str, start: datetime, end: datetime, rates: RateBook
) -> dict[str, Fraction]:
    """Revenue by the date of each cash event (METRICS.md, "Revenue")."""
    figures = _Figures(rates)
    for key in (
        "gross_revenue", "refunds", "fees", "tax_collected", "recurring_revenue",
        "usage_revenue", "one_time_revenue", "out_of_band_revenue",
    ):  # fmt: skip
        figures.money[key] = Fraction(0)
    p, i, r, d = payments.c, invoices.c, refunds.c, disputes.c
    paid = await conn.execute(
        select(p.amount, p.currency, p.paid_at, p.fee, p.invoice_id).where(
            p.account == account, p.paid.is_(True), p.paid_at >= start, p.paid_at < end
        )
    )
    paid_rows = paid.all()
    invoice_ids = [row.invoice_id for row in paid_rows if row.invoice_id]
    split = {
        row.invoice_id: row
        for row in await conn.execute(
            select(
                i.invoice_id, i.total, i.recurring_amount, i.usage_amount, i.one_time_amount
            ).where(i.account == account, i.invoice_id.in_(invoice_ids))
        )
    }
    for row in paid_rows:
        figures.add("gross_revenue", row.amount, row.currency, row.paid_at)
        figures.add("fees", row.fee or 0, row.currency, row.paid_at)
        invoice = split.get(row.invoice_id)
        if invoice is None or not invoice.total:
            figures.add("one_time_revenue", row.amount, row.currency, row.paid_at)
            continue
        # A payment carries its invoice's kinds in proportion (tax is not revenue by kind).
        share = Fraction(row.amount, invoice.total)
        figures.add(
            "recurring_revenue", invoice.recurring_amount * share, row.currency, row.paid_at
        )
        figures.add("usage_revenue", invoice.usage_amount * share, row.currency, row.paid_at)
        figures.add("one_time_revenue", invoice.one_time_amount * share, row.currency, row.paid_at)
    for refund in await conn.execute(
        select(r.amount, r.currency, r.refunded_at, r.fee).where(
            r.account == account,
            r.status.in_(_REFUNDED),
            r.refunded_at >= start,
            r.refunded_at < end,
        )
    ):
        figures.add("refunds", refund.amount, refund.currency, refund.refunded_at)
        figures.add("fees", refund.fee or 0, refund.currency, refund.refunded_at)
    losses = Fraction(0)
    for dispute in await conn.execute(
        select(d.amount, d.currency, d.closed_at, d.fee, d.created, d.lost).where(
            d.account == account,
            or_(
                and_(d.lost.is_(True), d.closed_at >= start, d.closed_at < end),
                and_(d.created >= start, d.created < end),
            ),
        )
    ):
        if start <= dispute.created < end:
            figures.add("fees", dispute.fee, dispute.currency, dispute.created)
        if dispute.lost and dispute.closed_at is not None and start <= dispute.closed_at < end:
            losses += rates.convert(dispute.amount, dispute.currency, dispute.closed_at)
    for invoice_row in await conn.execute(
        select(i.tax, i.currency, i.paid_at, i.paid_out_of_band, i.amount_paid).where(
            i.account == account, i.paid_at >= start, i.paid_at < end, i.status == "paid"
        )
    ):
        when, cur = invoice_row.paid_at, invoice_row.currency
        figures.add("tax_collected", invoice_row.tax, cur, when)
        if invoice_row.paid_out_of_band:
            figures.add("out_of_band_revenue", invoice_row.amount_paid, cur, when)
    money = figures.money
    money["net_revenue"] = money["gross_revenue"] - money["refunds"] - losses
    money["net_volume"] = money["net_revenue"] - money["fees"]
    return dict(money)
