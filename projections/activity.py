"""The activity stream: what the old KISSmetrics Stripe import sent, without its shortcomings.

One row per billing, upgrade, downgrade, cancellation and reactivation of every subscription
of a customer, derived like every read model from the whole set of the customer's events:
every subscription (not the first one only), the amount actually paid (prorations in,
one-time items out), invoices re-read whenever they change (a late payment is billed when
it is paid), and upgrades, downgrades and cancellations with their reasons.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Any, Literal, TextIO

import orjson
from sqlalchemy import Table, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.schema import activity
from projections.customer_facts import CustomerFacts, InvoiceFact, SubscriptionSnapshot
from projections.customer_history import CustomerHistory, SubscriptionSegment
from projections.money import major_units, to_text
from projections.read_events import Evidence
from projections.routing import GUEST
from projections.stripe_fields import Invoice, InvoiceLine, Price, Subscription
from projections.subscription_state import discount_key

BILLED = "Subscription Billed"
UPGRADED = "Subscription Upgraded"
DOWNGRADED = "Subscription Downgraded"
CANCELED = "Subscription Canceled"
REACTIVATED = "Subscription Reactivated"
# At one instant a change comes before the invoice it causes, and a comeback before both.
EVENT_RANK = {REACTIVATED: 0, UPGRADED: 1, DOWNGRADED: 1, BILLED: 2, CANCELED: 3}

ExportFormat = Literal["csv", "jsonl"]

# Same normalisation as item MRR (projections.item_mrr): a year is 12 months, 52 weeks or
# 365 days, so a billing length times the MRR gives back the price.
_MONTHS = {
    "month": Fraction(1),
    "year": Fraction(12),
    "week": Fraction(12, 52),
    "day": Fraction(12, 365),
}
_ONE_TIME = ""  # the allocation key of an invoice's lines that belong to no subscription


def activity_rows(facts: CustomerFacts, history: CustomerHistory) -> list[dict[str, Any]]:
    """Every activity row of one customer (the `activity` table's columns but `id`)."""
    if facts.customer_id == GUEST:
        return []
    profile = facts.customer
    identity = profile.email if profile is not None and profile.email else facts.customer_id
    prices = _price_catalogue(facts)
    snapshots = {s.evidence.event_id: s for snaps in facts.subscriptions.values() for s in snaps}
    found: list[dict[str, Any]] = []
    for invoice_facts in facts.invoices.values():
        found += _billed(invoice_facts, prices, facts)
    found += _changes(history, snapshots, facts, prices)
    found += _cancellations(facts, history, prices)
    found += _reactivations(history, snapshots, prices)
    common = {"account": facts.account, "customer_id": facts.customer_id, "identity": identity}
    rows = [common | row for row in found]
    rows.sort(key=_row_order)
    return rows


def activity_read_model(
    facts: CustomerFacts, history: CustomerHistory
) -> dict[Table, list[dict[str, Any]]]:
    """The customer's rows keyed by table, to merge with the other read models."""
    return {activity: activity_rows(facts, history)}


def _row_order(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["occurred_at"],
        EVENT_RANK[row["event_name"]],
        row["subscription_id"] or "",
        row["invoice_id"] or "",
        row["event_name"],
    )


def _row(
    event_name: str,
    occurred_at: datetime,
    causes: Iterable[Evidence],
    *,
    subscription_id: str | None = None,
    invoice_id: str | None = None,
    amount: int | None = None,
    currency: str | None = None,
    billing_months: str | None = None,
    plan: str | None = None,
    mrr_before: Fraction | None = None,
    mrr_after: Fraction | None = None,
    subscription: Subscription | None = None,
) -> dict[str, Any]:
    return {
        "event_name": event_name,
        "occurred_at": occurred_at,
        "subscription_id": subscription_id,
        "invoice_id": invoice_id,
        "amount": amount,
        "currency": currency.lower() if currency else None,
        "billing_months": billing_months,
        "plan": plan[:512] if plan else None,
        "mrr_before_exact": to_text(mrr_before) if mrr_before is not None else None,
        "mrr_after_exact": to_text(mrr_after) if mrr_after is not None else None,
        "cancellation_reason": subscription.cancellation_reason if subscription else None,
        "cancellation_feedback": subscription.cancellation_feedback if subscription else None,
        "cancellation_comment": subscription.cancellation_comment if subscription else None,
        "event_ids": orjson.dumps([c.event_id for c in sorted(set(causes))]).decode(),
    }


# --- prices and plans ---------------------------------------------------------------------


def _price_catalogue(facts: CustomerFacts) -> dict[str, Price]:
    """Every price the customer's events show in full, newest rendering last.

    Basil invoice lines name their price by id only; the subscriptions embed it whole.
    """
    seen: list[tuple[Evidence, Price]] = []
    for snaps in facts.subscriptions.values():
        for snap in snaps:
            seen += [(snap.evidence, item.price) for item in snap.subscription.items]
    for invoice_facts in facts.invoices.values():
        for fact in invoice_facts:
            seen += [(fact.evidence, line.price) for line in fact.invoice.lines if line.price]
    seen.sort(key=lambda pair: pair[0])
    return {price.id: price for _, price in seen}


def _price_name(price_id: str, prices: dict[str, Price]) -> str:
    price = prices.get(price_id)
    if price is None:
        return price_id
    return price.nickname or price.product or price.id


def _plan(price_ids: Sequence[str], prices: dict[str, Price]) -> str | None:
    names = dict.fromkeys(_price_name(p, prices) for p in price_ids)
    return " + ".join(names) or None


def _billing_months(price_ids: Sequence[str], prices: dict[str, Price]) -> str | None:
    for price_id in price_ids:
        price = prices.get(price_id)
        if price is not None and price.interval in _MONTHS:
            months = _MONTHS[price.interval] * max(price.interval_count, 1)
            return decimal_text(months)
    return None


def decimal_text(value: Fraction) -> str:
    """4 places, half-even, without trailing zeros: 1 -> "1", 12/52 -> "0.2308"."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    rounded = exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
    text = f"{rounded:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _licensed(price_id: str, prices: dict[str, Price]) -> bool:
    price = prices.get(price_id)
    return price is None or (price.usage_type != "metered" and price.interval is not None)


def _subscription_prices(sub: Subscription) -> list[str]:
    """The prices that name a subscription's plan: its licensed recurring items (a metered
    add-on is not the plan), else all of them."""
    every = [item.price for item in sub.items]
    licensed = [p for p in every if p.usage_type != "metered" and p.interval is not None]
    return [p.id for p in licensed or every]


def _snapshot_plan(snapshot: SubscriptionSnapshot | None, prices: dict[str, Price]) -> str | None:
    return _plan(_subscription_prices(snapshot.subscription), prices) if snapshot else None


# --- Subscription Billed ----------------------------------------------------------------------


def _line_owner(line: InvoiceLine, invoice: Invoice) -> str:
    """The subscription a line bills, or _ONE_TIME for a one-time item.

    Before 2019 prorations were invoice items; they bill the subscription all the same.
    A non-proration invoice item is a one-time charge even when Stripe ties it to the
    subscription's invoice (`add_invoice_items`).
    """
    if line.kind == "invoiceitem" and not line.proration:
        return _ONE_TIME
    return line.subscription or invoice.subscription or _ONE_TIME


def _allocate(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split `total` in proportion to the weights, in whole minor units that sum to it
    (largest remainder, ties by key)."""
    whole = sum(weights.values())
    shares = {key: Fraction(total * w, whole) for key, w in weights.items()}
    parts = {key: int(share) for key, share in shares.items()}
    left = total - sum(parts.values())
    by_remainder = sorted(shares, key=lambda k: (-(shares[k] - parts[k]), k))
    for key in by_remainder[:left]:
        parts[key] += 1
    return parts


def _billed(
    invoice_facts: Sequence[InvoiceFact], prices: dict[str, Price], facts: CustomerFacts
) -> list[dict[str, Any]]:
    # The latest state decides, so an invoice that failed and was paid later is billed
    # when it was paid (the old import read each invoice once).
    invoice = invoice_facts[-1].invoice
    paid = invoice.amount_paid or 0
    if invoice.status != "paid" or invoice.paid_at is None or paid <= 0:
        return []
    causes = [f.evidence for f in invoice_facts if f.invoice.status == "paid"]
    groups: dict[str, list[InvoiceLine]] = {}
    for line in invoice.lines:
        groups.setdefault(_line_owner(line, invoice), []).append(line)
    weights = {
        key: max(sum(line.amount - line.discount_amount for line in lines), 0)
        for key, lines in groups.items()
    }
    if invoice.lines_has_more or sum(weights.values()) <= 0:
        # Lines unknown or incomplete: the whole payment is the invoice's subscription's.
        if invoice.subscription is None:
            return []
        shares = {invoice.subscription: paid}
        groups = {invoice.subscription: []}
    else:
        shares = _allocate(paid, weights)
    rows = []
    for subscription_id, amount in sorted(shares.items()):
        if subscription_id == _ONE_TIME or amount <= 0:
            continue
        price_ids = _billed_prices(groups[subscription_id], prices)
        if not price_ids:
            snapshot = _snapshot_at(facts.subscriptions.get(subscription_id, []), invoice.paid_at)
            price_ids = _subscription_prices(snapshot.subscription) if snapshot else []
        rows.append(
            _row(
                BILLED,
                invoice.paid_at,
                causes,
                subscription_id=subscription_id,
                invoice_id=invoice.id,
                amount=amount,
                currency=invoice.currency,
                billing_months=_billing_months(price_ids, prices),
                plan=_plan(price_ids, prices),
            )
        )
    return rows


def _billed_prices(lines: Sequence[InvoiceLine], prices: dict[str, Price]) -> list[str]:
    """The prices that name the plan a billing was for: its licensed recurring lines, else
    (an invoice of prorations only) the prices charged for, else any."""
    priced = [line for line in lines if line.price_id]
    choices = (
        [ln for ln in priced if not ln.proration and _licensed(ln.price_id or "", prices)],
        [ln for ln in priced if ln.proration and ln.amount > 0],
        priced,
    )
    for chosen in choices:
        if chosen:
            return list(dict.fromkeys(ln.price_id or "" for ln in chosen))
    return []


def _snapshot_at(
    snapshots: Sequence[SubscriptionSnapshot], at: datetime
) -> SubscriptionSnapshot | None:
    known = [s for s in snapshots if s.evidence.created <= at]
    return known[-1] if known else (snapshots[0] if snapshots else None)


# --- Upgraded, Downgraded, Canceled, Reactivated ----------------------------------------


def _by_subscription(history: CustomerHistory) -> dict[str, list[SubscriptionSegment]]:
    found: dict[str, list[SubscriptionSegment]] = {}
    for segment in history.subscriptions:  # already ordered by subscription, then time
        found.setdefault(segment.state.subscription_id, []).append(segment)
    return found


def _changes(
    history: CustomerHistory,
    snapshots: dict[str, SubscriptionSnapshot],
    facts: CustomerFacts,
    prices: dict[str, Price],
) -> list[dict[str, Any]]:
    """A subscription's own MRR up or down while it contributes before and after: a new
    subscription, a trial converting, a pause or a cancellation is none of these."""
    discount_events: dict[str, list[Evidence]] = {}
    for fact in facts.discounts:
        discount_events.setdefault(discount_key(fact.discount), []).append(fact.evidence)
    rows = []
    for segments in _by_subscription(history).values():
        for before, after in pairwise(segments):
            old, new = before.state.mrr, after.state.mrr
            if old <= 0 or new <= 0 or old == new:
                continue
            # The snapshot now in force, and any discount event that changed the price.
            changed = set(before.state.discount_keys) ^ set(after.state.discount_keys)
            causes = [after.state.evidence] + [
                e
                for key in changed
                for e in discount_events.get(key, [])
                if e.created <= after.valid_from
            ]
            snapshot = snapshots.get(after.state.evidence.event_id)
            rows.append(
                _row(
                    UPGRADED if new > old else DOWNGRADED,
                    after.valid_from,
                    causes,
                    subscription_id=after.state.subscription_id,
                    currency=after.state.currency,
                    plan=_snapshot_plan(snapshot, prices),
                    mrr_before=old,
                    mrr_after=new,
                )
            )
    return rows


def _cancellations(
    facts: CustomerFacts, history: CustomerHistory, prices: dict[str, Price]
) -> list[dict[str, Any]]:
    """One per subscription Stripe canceled, at its `ended_at`, with Stripe's reason. An
    `incomplete_expired` subscription never started, so it is not canceled."""
    segments = defaultdict(list, _by_subscription(history))
    rows = []
    for subscription_id, snaps in sorted(facts.subscriptions.items()):
        canceled = [s for s in snaps if s.subscription.status == "canceled"]
        if not canceled:
            continue
        sub = canceled[-1].subscription
        # Stripe always sets `ended_at`; failing that, when the MRR history saw it end.
        ended = [g.valid_from for g in segments[subscription_id] if g.state.status == "canceled"]
        occurred_at = sub.ended_at or (ended[0] if ended else canceled[0].evidence.created)
        rows.append(
            _row(
                CANCELED,
                occurred_at,
                [s.evidence for s in canceled],
                subscription_id=subscription_id,
                currency=sub.currency,
                plan=_plan(_subscription_prices(sub), prices),
                subscription=sub,
            )
        )
    return rows


def _reactivations(
    history: CustomerHistory,
    snapshots: dict[str, SubscriptionSnapshot],
    prices: dict[str, Price],
) -> list[dict[str, Any]]:
    """A customer coming back after churn (a customer-level movement): named after the
    subscription that came back when exactly one did."""
    rows = []
    segments = _by_subscription(history)
    for movement in history.movements:
        if movement.kind != "reactivation":
            continue
        back = [
            seg
            for segs in segments.values()
            for i, seg in enumerate(segs)
            if seg.valid_from == movement.at
            and seg.state.mrr > 0
            and (i == 0 or segs[i - 1].state.mrr <= 0)
        ]
        only = back[0] if len(back) == 1 else None
        snapshot = snapshots.get(only.state.evidence.event_id) if only else None
        rows.append(
            _row(
                REACTIVATED,
                movement.at,
                movement.causes,
                subscription_id=only.state.subscription_id if only else None,
                currency=movement.currency,
                plan=_snapshot_plan(snapshot, prices),
                mrr_before=movement.mrr_before,
                mrr_after=movement.mrr_after,
            )
        )
    return rows


# --- export ---------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "account",
    "occurred_at",
    "event_name",
    "identity",
    "customer_id",
    "subscription_id",
    "invoice_id",
    "amount",
    "currency",
    "billing_months",
    "plan",
    "mrr_before",
    "mrr_after",
    "cancellation_reason",
    "cancellation_feedback",
    "cancellation_comment",
    "event_ids",
)


def _money(minor: int | str | None, currency: str | None) -> str | None:
    """Minor units (an integer or an exact fraction's text) as a major-unit decimal."""
    if minor is None:
        return None
    return major_units(Fraction(minor), currency or "usd")


def export_record(row: Any) -> dict[str, Any]:
    """One stored row as exported: money in major units, times ISO 8601 in UTC."""
    currency = row.currency
    return {
        "account": row.account,
        "occurred_at": row.occurred_at.astimezone(UTC).isoformat(),
        "event_name": row.event_name,
        "identity": row.identity,
        "customer_id": row.customer_id,
        "subscription_id": row.subscription_id,
        "invoice_id": row.invoice_id,
        "amount": _money(row.amount, currency),
        "currency": currency,
        "billing_months": row.billing_months,
        "plan": row.plan,
        "mrr_before": _money(row.mrr_before_exact, currency),
        "mrr_after": _money(row.mrr_after_exact, currency),
        "cancellation_reason": row.cancellation_reason,
        "cancellation_feedback": row.cancellation_feedback,
        "cancellation_comment": row.cancellation_comment,
        "event_ids": orjson.loads(row.event_ids),
    }


async def export_activity(
    conn: AsyncConnection,
    account: str,
    since: datetime,
    fmt: ExportFormat,
    out: TextIO,
    *,
    until: datetime | None = None,
) -> int:
    """Write the account's activity from `since` (inclusive) in time order; returns rows."""
    a = activity.c
    rank = case(*((a.event_name == name, r) for name, r in EVENT_RANK.items()), else_=9)
    query = select(activity).where(a.account == account, a.occurred_at >= since)
    if until is not None:
        query = query.where(a.occurred_at < until)
    query = query.order_by(
        a.occurred_at,
        a.customer_id,
        rank,
        func.coalesce(a.subscription_id, ""),
        func.coalesce(a.invoice_id, ""),
        a.id,
    )
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(EXPORT_COLUMNS)
    count = 0
    async for row in await conn.stream(query):
        record = export_record(row)
        if writer is not None:
            record["event_ids"] = orjson.dumps(record["event_ids"]).decode()
            writer.writerow(["" if record[c] is None else record[c] for c in EXPORT_COLUMNS])
        else:
            out.write(orjson.dumps(record).decode() + "\n")
        count += 1
    return count
