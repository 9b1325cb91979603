"""Read any modelled Stripe object by its `object` tag, and find whose customer it is."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from ._read import StripeJson, get, mapping, ref_id
from .customers import Customer, read_customer
from .discounts import Coupon, Discount, read_coupon, read_discount
from .invoices import (
    Invoice,
    InvoiceLine,
    InvoicePayment,
    read_invoice,
    read_invoice_line,
    read_invoice_payment,
)
from .payments import (
    BalanceTransaction,
    Charge,
    Dispute,
    Refund,
    read_balance_transaction,
    read_charge,
    read_dispute,
    read_refund,
)
from .prices import Price, read_price
from .subscriptions import (
    Subscription,
    SubscriptionItem,
    SubscriptionSchedule,
    read_subscription,
    read_subscription_item,
    read_subscription_schedule,
)

StripeRecord: TypeAlias = (
    Price
    | Coupon
    | Discount
    | SubscriptionItem
    | Subscription
    | SubscriptionSchedule
    | InvoiceLine
    | Invoice
    | InvoicePayment
    | Charge
    | Refund
    | Dispute
    | BalanceTransaction
    | Customer
)

_READERS: dict[str, Callable[[StripeJson], StripeRecord]] = {
    "price": read_price,
    "plan": read_price,
    "coupon": read_coupon,
    "discount": read_discount,
    "subscription_item": read_subscription_item,
    "subscription": read_subscription,
    "subscription_schedule": read_subscription_schedule,
    "line_item": read_invoice_line,
    "invoice": read_invoice,
    "invoice_payment": read_invoice_payment,
    "charge": read_charge,
    "refund": read_refund,
    "dispute": read_dispute,
    "balance_transaction": read_balance_transaction,
    "customer": read_customer,
}


def read_object(obj: StripeJson) -> StripeRecord | None:
    """Read `obj` by its `object` tag; None for kinds this module does not model."""
    reader = _READERS.get(obj.get("object") or "")
    return reader(obj) if reader is not None else None


def customer_of(obj: StripeJson | StripeRecord) -> str | None:
    """The customer id an object belongs to, raw or already read; None when it names none.

    Refunds name a customer only from 2026-07-29.dahlia, disputes and invoice payments
    never: for those the customer is found through the expanded charge or invoice.
    """
    if isinstance(obj, Customer):
        return obj.id
    if not isinstance(obj, Mapping):
        found: Any = getattr(obj, "customer", None)
        return found if isinstance(found, str) else None
    kind = obj.get("object")
    if kind == "customer":
        return ref_id(obj)
    direct = ref_id(obj.get("customer"))
    if direct is not None:
        return direct
    for via in ("charge", "invoice", "source"):
        nested = mapping(obj.get(via))
        if nested is not None and get(nested, "object") in ("charge", "invoice", "refund"):
            return customer_of(nested)
    return None
