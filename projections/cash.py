"""One customer's cash read models: invoices (status history, line split), payments, refunds
and disputes, each object at its latest state and dated by its balance transaction where known.
A function of the set of events: ordered by Stripe time and object state, never by arrival.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Table

from ledger.event_log import StoredEvent
from ledger.logs import get_logger
from ledger.schema import disputes, invoice_status_history, invoices, payments, refunds
from projections.customer_facts import INVOICE_STATUS_RANK
from projections.money import minor_unit_exponent, round_minor
from projections.read_events import Evidence, ReadEvent, read_events
from projections.stripe_fields import (
    BalanceTransaction,
    Charge,
    Dispute,
    Invoice,
    InvoiceLine,
    InvoicePayment,
    Price,
    Refund,
    StripeRecord,
    Subscription,
    SubscriptionItem,
)

log = get_logger("projections")

T = TypeVar("T")
Row = dict[str, Any]
LineKind = Literal["recurring", "usage", "one_time"]

# Within one second, an object's own lifecycle tells which state came later.
CHARGE_STATUS_RANK = {"pending": 0, "failed": 1, "succeeded": 1}
REFUND_STATUS_RANK = {"pending": 0, "requires_action": 0} | dict.fromkeys(
    ("succeeded", "failed", "canceled"), 1
)
# Inquiries (warning_*) and chargebacks both go "needs response" -> "under review" -> closed;
# `charge_refunded` is a retired closed status
# (https://docs.stripe.com/api/disputes/object#dispute_object-status).
DISPUTE_STATUS_RANK = (
    dict.fromkeys(("warning_needs_response", "needs_response"), 0)
    | dict.fromkeys(("warning_under_review", "under_review"), 1)
    | dict.fromkeys(("warning_closed", "won", "lost", "prevented", "charge_refunded"), 2)
)
_TXN_STATUS_RANK = {"pending": 0, "available": 1}
# Balance-transaction types that carry each object's money (source = that object's id).
_CHARGE_TXN_TYPES = ("charge", "payment")
_REFUND_TXN_TYPES = ("refund", "payment_refund")


@dataclass(frozen=True, slots=True)
class _Seen(Generic[T]):
    """One state of one object and the ledger event that showed it."""

    record: T
    evidence: Evidence
    rank: tuple[int, ...]

    @property
    def key(self) -> tuple[datetime, tuple[int, ...], str]:
        return (self.evidence.created, self.rank, self.evidence.event_id)


@dataclass
class _CashFacts:
    invoices: dict[str, list[_Seen[Invoice]]] = field(default_factory=dict)
    charges: dict[str, list[_Seen[Charge]]] = field(default_factory=dict)
    refunds: dict[str, list[_Seen[Refund]]] = field(default_factory=dict)
    nested_refunds: dict[str, list[_Seen[Refund]]] = field(default_factory=dict)
    disputes: dict[str, list[_Seen[Dispute]]] = field(default_factory=dict)
    transactions: dict[str, list[_Seen[BalanceTransaction]]] = field(default_factory=dict)
    invoice_payments: list[InvoicePayment] = field(default_factory=list)
    # Subscription items name their full price; basil invoice lines only its id.
    prices_by_id: dict[str, Price] = field(default_factory=dict)
    prices_by_item: dict[str, Price] = field(default_factory=dict)
    items: list[_Seen[SubscriptionItem]] = field(default_factory=list)


def cash_rows(
    account: str, customer_id: str, events: Sequence[StoredEvent]
) -> dict[Table, list[Row]]:
    return cash_rows_of(account, customer_id, read_events(events))


def cash_rows_of(
    account: str, customer_id: str, events: Iterable[ReadEvent]
) -> dict[Table, list[Row]]:
    """The rows of the five cash tables for one customer, from all of its events (routed
    refunds, invoice payments, disputes and balance-transaction snapshots included).

    Refunds keep every status (pending, failed, canceled too) and disputes every outcome:
    the metrics layer decides what counts (succeeded/pending refunds, lost disputes).
    """
    facts = _read(events)
    base = {"account": account, "customer_id": customer_id}
    txns = _Transactions(facts)
    rows: dict[Table, list[Row]] = {invoices: [], invoice_status_history: []}
    for invoice_id, seen in sorted(facts.invoices.items()):
        invoice_row, history = _invoice_rows(invoice_id, seen, facts)
        rows[invoices].append(base | invoice_row)
        rows[invoice_status_history] += [base | h for h in history]
    links = _InvoiceLinks(facts)
    rows[payments] = [
        base | _payment_row(s[-1], links, txns) for _, s in sorted(facts.charges.items())
    ]
    all_refunds = facts.nested_refunds | facts.refunds  # a refund's own events win
    rows[refunds] = [base | _refund_row(s[-1], txns) for _, s in sorted(all_refunds.items())]
    rows[disputes] = [base | _dispute_row(s, txns) for _, s in sorted(facts.disputes.items())]
    return rows


# --- reading -------------------------------------------------------------------------------


def _read(events: Iterable[ReadEvent]) -> _CashFacts:
    facts = _CashFacts()
    for event in events:
        if event.record is not None:
            _read_into(facts, event.record, event.evidence)
    for group in (
        facts.invoices,
        facts.charges,
        facts.refunds,
        facts.nested_refunds,
        facts.disputes,
        facts.transactions,
    ):
        for states in group.values():
            states.sort(key=lambda s: s.key)
    facts.invoice_payments.sort(key=lambda p: p.id)
    for item in sorted(facts.items, key=lambda s: (s.key, s.record.id)):  # the latest wins
        facts.prices_by_id[item.record.price.id] = item.record.price
        facts.prices_by_item[item.record.id] = item.record.price
    return facts


def _add(group: dict[str, list[_Seen[T]]], key: str, seen: _Seen[T]) -> None:
    group.setdefault(key, []).append(seen)


def _read_into(facts: _CashFacts, record: StripeRecord, evidence: Evidence) -> None:
    rank: tuple[int, ...]
    if isinstance(record, Invoice):
        if record.id is not None:  # previews (`invoice.upcoming`) have no id
            rank = (INVOICE_STATUS_RANK.get(record.status or "", 0),)
            _add(facts.invoices, record.id, _Seen(record, evidence, rank))
    elif isinstance(record, Charge):
        # `amount_refunded` only grows: it orders `charge.refunded` after `charge.succeeded`.
        rank = (CHARGE_STATUS_RANK.get(record.status or "", 0), record.amount_refunded or 0)
        _add(facts.charges, record.id, _Seen(record, evidence, rank))
        for nested in record.refunds:
            nested = dataclasses.replace(nested, charge=nested.charge or record.id)
            _add(facts.nested_refunds, nested.id, _Seen(nested, evidence, _refund_rank(nested)))
    elif isinstance(record, Refund):
        _add(facts.refunds, record.id, _Seen(record, evidence, _refund_rank(record)))
    elif isinstance(record, Dispute):
        rank = (DISPUTE_STATUS_RANK.get(record.status or "", 0),)
        _add(facts.disputes, record.id, _Seen(record, evidence, rank))
    elif isinstance(record, BalanceTransaction):
        rank = (_TXN_STATUS_RANK.get(record.status or "", 0),)
        _add(facts.transactions, record.id, _Seen(record, evidence, rank))
    elif isinstance(record, InvoicePayment):
        facts.invoice_payments.append(record)
    elif isinstance(record, Subscription):
        facts.items += [_Seen(item, evidence, ()) for item in record.items]


def _refund_rank(refund: Refund) -> tuple[int, ...]:
    return (REFUND_STATUS_RANK.get(refund.status or "", 0),)


class _Transactions:
    """The balance transactions among the events, by id and by source object."""

    def __init__(self, facts: _CashFacts) -> None:
        self.by_id = {txn_id: states[-1].record for txn_id, states in facts.transactions.items()}
        self.by_source: dict[str, list[BalanceTransaction]] = {}
        for txn in sorted(self.by_id.values(), key=lambda t: t.id):
            if txn.source is not None:
                self.by_source.setdefault(txn.source, []).append(txn)

    def of(
        self, txn_id: str | None, source: str, types: tuple[str, ...]
    ) -> BalanceTransaction | None:
        """The object's own balance transaction: named by id, else the first of its source
        with a money type (a failed refund also has a `refund_failure` one, not its cash)."""
        if txn_id is not None and txn_id in self.by_id:
            return self.by_id[txn_id]
        found = [t for t in self.by_source.get(source, []) if t.type in types or t.type is None]
        return min(found, key=lambda t: (t.created is None, t.created, t.id), default=None)


def _fee_in(txn: BalanceTransaction | None, currency: str | None) -> int | None:
    """The fee in the object's own currency. A balance transaction is in the settlement
    currency; its `exchange_rate` takes major units of the object's currency into it
    (https://docs.stripe.com/api/balance_transactions/object#balance_transaction_object-exchange_rate).
    """
    if txn is None or txn.fee is None:
        return None
    if currency is None or txn.currency is None or txn.currency == currency:
        return txn.fee
    if not txn.exchange_rate:
        return None
    shift = minor_unit_exponent(currency) - minor_unit_exponent(txn.currency)
    return round_minor(txn.fee / txn.exchange_rate * Fraction(10) ** shift)


# --- invoices -------------------------------------------------------------------------------


def _transitions(invoice: Invoice) -> dict[str, datetime | None]:
    return {
        "open": invoice.finalized_at,
        "paid": invoice.paid_at,
        "void": invoice.voided_at,
        "uncollectible": invoice.marked_uncollectible_at,
    }


def _invoice_rows(
    invoice_id: str, seen: list[_Seen[Invoice]], facts: _CashFacts
) -> tuple[Row, list[Row]]:
    last = seen[-1]
    invoice = last.record
    created = invoice.created or seen[0].evidence.created
    # Transition times are only ever filled in; an event may predate one, so merge them all.
    times: dict[str, datetime] = {}
    for state in reversed(seen):
        for status, at in _transitions(state.record).items():
            if at is not None:
                times.setdefault(status, at)
    # A status counts from the first event showing it, or carrying its transition time (a
    # backfilled snapshot of a paid invoice still tells when it was finalized).
    first: dict[str, Evidence] = {}
    for state in seen:
        reached = [s for s, at in _transitions(state.record).items() if at is not None]
        for status in filter(None, [state.record.status, *reached]):
            first.setdefault(status, state.evidence)
    history = sorted(
        (
            created if status == "draft" else times.get(status, evidence.created),
            INVOICE_STATUS_RANK.get(status, 0),
            status,
            evidence,
        )
        for status, evidence in first.items()
    )
    split = {"recurring": 0, "usage": 0, "one_time": 0}
    for line in invoice.lines:
        # Before tax: a tax-inclusive line's amount contains its tax.
        net = line.amount - line.discount_amount - line.inclusive_tax_amount
        split[_line_kind(line, facts)] += net
    row = {
        "invoice_id": invoice_id,
        "subscription_id": invoice.subscription,
        "status": invoice.status or "unknown",
        "currency": invoice.currency or "",
        "billing_reason": invoice.billing_reason,
        "created": created,
        "finalized_at": times.get("open"),
        "paid_at": times.get("paid"),
        "voided_at": times.get("void"),
        "marked_uncollectible_at": times.get("uncollectible"),
        "subtotal": invoice.subtotal or 0,
        "tax": invoice.tax,
        "total": invoice.total or 0,
        "amount_paid": invoice.amount_paid or 0,
        "paid_out_of_band": invoice.paid_out_of_band or False,
        "recurring_amount": split["recurring"],
        "usage_amount": split["usage"],
        "one_time_amount": split["one_time"],
        "event_id": last.evidence.event_id,
        "position": last.evidence.position,
    }
    return row, [
        {
            "invoice_id": invoice_id,
            "status": status,
            "effective_at": at,
            "event_id": evidence.event_id,
            "position": evidence.position,
        }
        for at, _, status, evidence in history
    ]


def _line_kind(line: InvoiceLine, facts: _CashFacts) -> LineKind:
    # Basil lines name their price by id only
    # (https://docs.stripe.com/changelog/basil/2025-03-31/invoice-pricing-configurations):
    # the full price comes from the customer's subscription items.
    price = (
        line.price
        or facts.prices_by_id.get(line.price_id or "")
        or facts.prices_by_item.get(line.subscription_item or "")
    )
    if price is not None and price.usage_type == "metered":
        return "usage"
    # Prorations are invoice items that still name their subscription item.
    on_subscription = line.kind == "subscription" or line.subscription_item is not None
    if (on_subscription or line.proration) and (price is None or price.interval is not None):
        return "recurring"
    return "one_time"


# --- payments, refunds, disputes ------------------------------------------------------------


def _payment_row(last: _Seen[Charge], links: _InvoiceLinks, txns: _Transactions) -> Row:
    charge = last.record
    txn = txns.of(charge.balance_transaction, charge.id, _CHARGE_TXN_TYPES)
    fee = _fee_in(txn, charge.currency) if txn is not None else charge.fee
    return {
        "charge_id": charge.id,
        "invoice_id": links.invoice_of(charge),
        "currency": charge.currency or "",
        "amount": charge.amount or 0,
        "amount_refunded": charge.amount_refunded or 0,
        "status": charge.status or "unknown",
        "paid": charge.paid if charge.paid is not None else charge.status == "succeeded",
        "paid_at": (txn.created if txn else None) or charge.created or last.evidence.created,
        "fee": fee,
        "balance_transaction_id": txn.id if txn is not None else charge.balance_transaction,
        "event_id": last.evidence.event_id,
        "position": last.evidence.position,
    }


class _InvoiceLinks:
    """Which invoice a charge paid. Basil dropped `charge.invoice` and `invoice.charge`: the
    link is an invoice payment naming the charge or its payment intent
    (https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices).
    """

    def __init__(self, facts: _CashFacts) -> None:
        self.by_charge: dict[str, str] = {}
        self.by_intent: dict[str, str] = {}
        for invoice_id, states in sorted(facts.invoices.items()):
            for state in states:
                self._link(invoice_id, state.record.charge, state.record.payment_intent)
        for payment in facts.invoice_payments:
            if payment.invoice is not None:
                self._link(payment.invoice, payment.charge, payment.payment_intent)

    def _link(self, invoice_id: str, charge: str | None, intent: str | None) -> None:
        if charge is not None:
            self.by_charge.setdefault(charge, invoice_id)
        if intent is not None:
            self.by_intent.setdefault(intent, invoice_id)

    def invoice_of(self, charge: Charge) -> str | None:
        return (
            charge.invoice
            or self.by_charge.get(charge.id)
            or self.by_intent.get(charge.payment_intent or "")
        )


def _refund_row(last: _Seen[Refund], txns: _Transactions) -> Row:
    refund = last.record
    txn = txns.of(refund.balance_transaction, refund.id, _REFUND_TXN_TYPES)
    return {
        "refund_id": refund.id,
        "charge_id": refund.charge,
        "currency": refund.currency or "",
        "amount": refund.amount or 0,
        "status": refund.status or "unknown",
        # The refund's own date, never its charge's: refunds are not back-dated.
        "refunded_at": (txn.created if txn else None) or refund.created or last.evidence.created,
        "fee": _fee_in(txn, refund.currency),
        "balance_transaction_id": txn.id if txn is not None else refund.balance_transaction,
        "event_id": last.evidence.event_id,
        "position": last.evidence.position,
    }


def _dispute_row(seen: list[_Seen[Dispute]], txns: _Transactions) -> Row:
    last = seen[-1]
    dispute = last.record
    # Withdrawal and reinstatement each have a balance transaction (source: the dispute),
    # embedded in the dispute and possibly snapshotted too: count each id once.
    found = {t.id: t for state in seen for t in state.record.balance_transactions}
    found |= {t.id: t for t in txns.by_source.get(dispute.id, [])}
    found |= {i: txns.by_id[i] for i in dispute.balance_transaction_ids if i in txns.by_id}
    lost = next((s.evidence.created for s in seen if s.record.status == "lost"), None)
    return {
        "dispute_id": dispute.id,
        "charge_id": dispute.charge,
        "currency": dispute.currency or "",
        "amount": dispute.amount or 0,
        "status": dispute.status or "unknown",
        "created": dispute.created or seen[0].evidence.created,
        "lost": dispute.status == "lost",
        "closed_at": lost if dispute.status == "lost" else None,
        "fee": sum(_fee_in(t, dispute.currency) or 0 for t in found.values()),
        "event_id": last.evidence.event_id,
        "position": last.evidence.position,
    }
