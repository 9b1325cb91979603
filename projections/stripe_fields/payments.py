"""Cash objects: charges, refunds, disputes and the balance transactions behind them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from ._read import (
    StripeJson,
    amount,
    currency_code,
    exact,
    flag,
    has_more,
    items,
    mapping,
    objects,
    ref_id,
    required_id,
    text,
    time,
)

# A balance transaction's exchange rate (major units into major units): the widest real
# pair (a dollar in Iranian rials) is about 10^5.
_MOST_RATE = 10**6


@dataclass(frozen=True, slots=True)
class BalanceTransaction:
    id: str
    amount: int | None
    fee: int | None
    net: int | None
    currency: str | None
    type: str | None
    reporting_category: str | None
    status: str | None
    source: str | None
    created: datetime | None
    available_on: datetime | None
    exchange_rate: Fraction | None


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    charge: str | None
    payment_intent: str | None
    customer: str | None
    amount: int | None
    currency: str | None
    created: datetime | None
    status: str | None
    reason: str | None
    balance_transaction: str | None


@dataclass(frozen=True, slots=True)
class Charge:
    id: str
    customer: str | None
    amount: int | None
    amount_captured: int | None
    amount_refunded: int | None
    currency: str | None
    created: datetime | None
    status: str | None
    paid: bool | None
    captured: bool | None
    refunded: bool | None
    disputed: bool | None
    invoice: str | None
    payment_intent: str | None
    balance_transaction: str | None
    fee: int | None
    refunds: tuple[Refund, ...]
    refunds_has_more: bool
    failure_code: str | None
    livemode: bool | None


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    charge: str | None
    payment_intent: str | None
    amount: int | None
    currency: str | None
    status: str | None
    created: datetime | None
    reason: str | None
    balance_transaction_ids: tuple[str, ...]
    fee_total: int
    net_total: int
    # The embedded ones that carry an id, so a reader can merge them with other copies.
    balance_transactions: tuple[BalanceTransaction, ...]


def read_balance_transaction(obj: StripeJson) -> BalanceTransaction:
    return BalanceTransaction(
        id=required_id(obj, "balance_transaction"),
        amount=amount(obj.get("amount"), field="amount"),
        fee=amount(obj.get("fee"), field="fee"),
        net=amount(obj.get("net"), field="net"),
        currency=currency_code(obj.get("currency")),
        type=text(obj.get("type")),
        reporting_category=text(obj.get("reporting_category")),
        status=text(obj.get("status")),
        source=ref_id(obj.get("source")),
        created=time(obj.get("created"), field="created"),
        available_on=time(obj.get("available_on"), field="available_on"),
        # A JSON number (e.g. 0.912345); read through its decimal text, never as a float.
        exchange_rate=exact(
            obj.get("exchange_rate"), field="exchange_rate", low=0, high=_MOST_RATE
        ),
    )


def read_refund(obj: StripeJson) -> Refund:
    return Refund(
        id=required_id(obj, "refund"),
        charge=ref_id(obj.get("charge")),
        payment_intent=ref_id(obj.get("payment_intent")),
        # Refunds name their customer only from 2026-07-29.dahlia
        # (https://docs.stripe.com/changelog/dahlia/2026-07-29/adds-customer-and-payment-method-details-to-the-refunds-api).
        customer=ref_id(obj.get("customer")),
        amount=amount(obj.get("amount"), field="amount"),
        currency=currency_code(obj.get("currency")),
        created=time(obj.get("created"), field="created"),
        status=text(obj.get("status")),
        reason=text(obj.get("reason")),
        balance_transaction=ref_id(obj.get("balance_transaction")),
    )


def read_charge(obj: StripeJson) -> Charge:
    """Read a charge; `fee` is known only when `balance_transaction` is expanded."""
    refunds_list = obj.get("refunds")
    amount_refunded = amount(obj.get("amount_refunded"), field="amount_refunded")
    expanded_txn = mapping(obj.get("balance_transaction"))
    return Charge(
        id=required_id(obj, "charge"),
        customer=ref_id(obj.get("customer")),
        amount=amount(obj.get("amount"), field="amount"),
        amount_captured=amount(obj.get("amount_captured"), field="amount_captured"),
        amount_refunded=amount_refunded,
        currency=currency_code(obj.get("currency")),
        created=time(obj.get("created"), field="created"),
        status=text(obj.get("status")),
        paid=flag(obj.get("paid")),
        captured=flag(obj.get("captured")),
        refunded=flag(obj.get("refunded")),
        disputed=flag(obj.get("disputed")),
        # Gone from basil on: the invoice link lives on invoice payments instead
        # (https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices).
        invoice=ref_id(obj.get("invoice")),
        payment_intent=ref_id(obj.get("payment_intent")),
        balance_transaction=ref_id(obj.get("balance_transaction")),
        fee=amount(expanded_txn.get("fee"), field="fee") if expanded_txn is not None else None,
        refunds=tuple(read_refund(refund) for refund in objects(refunds_list)),
        # From 2022-11-15 `refunds` is absent unless expanded
        # (https://docs.stripe.com/changelog/2022-11-15/deprecates-charges-auto-expand): then
        # the list is incomplete exactly when something was refunded.
        refunds_has_more=(
            has_more(refunds_list) if refunds_list is not None else bool(amount_refunded)
        ),
        failure_code=text(obj.get("failure_code")),
        livemode=flag(obj.get("livemode")),
    )


def read_dispute(obj: StripeJson) -> Dispute:
    """Read a dispute; its `balance_transactions` are embedded in full, never as ids.

    Some older payloads also carry a singular `balance_transaction` id; it is listed once.
    """
    embedded = list(objects(obj.get("balance_transactions")))
    ids = [found for found in (ref_id(t) for t in items(obj.get("balance_transactions"))) if found]
    single = ref_id(obj.get("balance_transaction"))
    if single is not None and single not in ids:
        ids.append(single)
    return Dispute(
        id=required_id(obj, "dispute"),
        charge=ref_id(obj.get("charge")),
        payment_intent=ref_id(obj.get("payment_intent")),
        amount=amount(obj.get("amount"), field="amount"),
        currency=currency_code(obj.get("currency")),
        status=text(obj.get("status")),
        created=time(obj.get("created"), field="created"),
        reason=text(obj.get("reason")),
        balance_transaction_ids=tuple(ids),
        fee_total=sum(amount(t.get("fee"), field="fee") or 0 for t in embedded),
        net_total=sum(amount(t.get("net"), field="net") or 0 for t in embedded),
        balance_transactions=tuple(
            read_balance_transaction(t) for t in embedded if ref_id(t) is not None
        ),
    )
