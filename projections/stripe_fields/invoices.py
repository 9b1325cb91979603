"""Invoices, their lines, and invoice payments, in the pre-basil and basil-on layouts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Literal

from ._read import (
    MAX_QUANTITY,
    StripeJson,
    amount,
    count,
    currency_code,
    exact,
    first_of,
    flag,
    get,
    has_more,
    items,
    mapping,
    objects,
    ref_id,
    required_id,
    text,
    time,
)
from .discounts import discount_refs
from .prices import Price, read_price

LineKind = Literal["subscription", "invoiceitem"]


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    id: str
    amount: int
    currency: str | None
    kind: LineKind | None
    proration: bool
    subscription: str | None
    subscription_item: str | None
    invoice_item: str | None
    price_id: str | None
    price: Price | None
    unit_amount: Fraction | None
    quantity: int | None
    quantity_decimal: Fraction | None
    period_start: datetime | None
    period_end: datetime | None
    tax_amount: int
    inclusive_tax_amount: int
    tax_inclusive: bool | None
    description: str | None
    discount_amount: int
    discount_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str | None
    customer: str | None
    subscription: str | None
    status: str | None
    currency: str | None
    livemode: bool | None
    created: datetime | None
    billing_reason: str | None
    collection_method: str | None
    amount_due: int | None
    amount_paid: int | None
    amount_remaining: int | None
    subtotal: int | None
    total: int | None
    tax: int
    total_excluding_tax: int | None
    paid: bool
    paid_out_of_band: bool | None
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    charge: str | None
    payment_intent: str | None
    lines: tuple[InvoiceLine, ...]
    lines_has_more: bool
    discount_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InvoicePayment:
    id: str
    invoice: str | None
    amount_paid: int | None
    amount_requested: int | None
    currency: str | None
    status: str | None
    payment_type: str | None
    charge: str | None
    payment_intent: str | None
    payment_record: str | None
    created: datetime | None
    paid_at: datetime | None
    canceled_at: datetime | None
    is_default: bool
    livemode: bool | None


_KINDS: dict[str, LineKind] = {
    "subscription": "subscription",
    "invoiceitem": "invoiceitem",
    "subscription_item_details": "subscription",
    "invoice_item_details": "invoiceitem",
}


def _sum_amounts(entries: Iterable[StripeJson]) -> int:
    return sum(amount(e.get("amount"), field="amount") or 0 for e in entries)


def _line_taxes(obj: StripeJson) -> tuple[int, int, bool | None]:
    """(all tax, tax-inclusive part, inclusive?) from `tax_amounts` (old) or `taxes` (basil).

    Basil replaced `tax_amounts[].inclusive` with `taxes[].tax_behavior`
    (https://docs.stripe.com/changelog/basil/2025-03-31/invoice-tax-configurations).
    """
    total = inclusive = 0
    behaviours: set[bool] = set()
    for entry in objects(first_of(obj.get("taxes"), obj.get("tax_amounts"))):
        taxed = amount(entry.get("amount"), field="amount") or 0
        is_inclusive = entry.get("inclusive") is True or entry.get("tax_behavior") == "inclusive"
        total += taxed
        inclusive += taxed if is_inclusive else 0
        behaviours.add(is_inclusive)
    return total, inclusive, behaviours.pop() if len(behaviours) == 1 else None


def _line_price(obj: StripeJson) -> tuple[str | None, Price | None]:
    # Basil replaced the line's `price`/`plan` objects with `pricing.price_details.price`,
    # an id unless expanded:
    # https://docs.stripe.com/changelog/basil/2025-03-31/invoice-pricing-configurations
    raw = first_of(get(obj, "pricing", "price_details", "price"), obj.get("price"), obj.get("plan"))
    expanded = mapping(raw)
    return ref_id(raw), read_price(expanded) if expanded is not None else None


def _line_origin(obj: StripeJson) -> tuple[LineKind | None, StripeJson | None]:
    parent = obj.get("parent")
    for key in (text(get(parent, "type")), "subscription_item_details", "invoice_item_details"):
        details = mapping(get(parent, key)) if key else None
        if key and details is not None:
            return _KINDS.get(key), details
    return _KINDS.get(text(obj.get("type")) or ""), None


def read_invoice_line(obj: StripeJson) -> InvoiceLine:
    """Read one invoice line; basil moved its origin under `parent`
    (https://docs.stripe.com/changelog/basil/2025-03-31/adds-new-parent-field-to-invoicing-objects).
    """
    kind, details = _line_origin(obj)
    line_id = required_id(obj, "line_item")
    invoice_item = ref_id(first_of(get(details, "invoice_item"), obj.get("invoice_item")))
    subscription = ref_id(first_of(get(details, "subscription"), obj.get("subscription")))
    # Before 2019-12-03 a line's id was its source's id (`ii_...` or `sub_...`), not `il_...`
    # (https://docs.stripe.com/changelog/2019-12-03).
    if invoice_item is None and kind == "invoiceitem" and line_id.startswith("ii_"):
        invoice_item = line_id
    if subscription is None and kind == "subscription" and line_id.startswith("sub_"):
        subscription = line_id
    price_id, price = _line_price(obj)
    unit = exact(get(obj, "pricing", "unit_amount_decimal"), field="unit_amount_decimal")
    tax, inclusive_tax, tax_inclusive = _line_taxes(obj)
    if tax_inclusive is None and tax == 0 and price is not None:
        tax_inclusive = {"inclusive": True, "exclusive": False}.get(price.tax_behavior or "")
    discount_ids, _ = discount_refs(items(obj.get("discounts")))
    return InvoiceLine(
        id=line_id,
        amount=amount(obj.get("amount"), field="amount") or 0,
        currency=currency_code(obj.get("currency")),
        kind=kind,
        proration=first_of(flag(get(details, "proration")), flag(obj.get("proration"))) is True,
        subscription=subscription,
        subscription_item=ref_id(
            first_of(get(details, "subscription_item"), obj.get("subscription_item"))
        ),
        invoice_item=invoice_item,
        price_id=price_id,
        price=price,
        unit_amount=unit if unit is not None else (price.unit_amount if price else None),
        quantity=count(obj.get("quantity"), field="quantity"),
        quantity_decimal=exact(
            obj.get("quantity_decimal"), field="quantity_decimal", low=0, high=MAX_QUANTITY
        ),
        period_start=time(get(obj, "period", "start"), field="period.start"),
        period_end=time(get(obj, "period", "end"), field="period.end"),
        tax_amount=tax,
        inclusive_tax_amount=inclusive_tax,
        tax_inclusive=tax_inclusive,
        description=text(obj.get("description")),
        discount_amount=_sum_amounts(objects(obj.get("discount_amounts"))),
        discount_ids=discount_ids,
    )


def _invoice_tax(obj: StripeJson) -> int:
    # `tax` (old), then `total_tax_amounts` (to basil), then `total_taxes` (basil on).
    old = amount(obj.get("tax"), field="tax")
    if old is not None:
        return old
    return _sum_amounts(objects(first_of(obj.get("total_taxes"), obj.get("total_tax_amounts"))))


def _settling_payment(obj: StripeJson) -> StripeJson | None:
    # From basil an invoice names its payments only in `payments` (when included or
    # expanded), not in `charge`/`payment_intent`
    # (https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices).
    paid = [p for p in objects(obj.get("payments")) if p.get("status") == "paid"]
    default = [p for p in paid if p.get("is_default") is True]
    return next(iter(default or paid), None)


def read_invoice(obj: StripeJson) -> Invoice:
    """Read an invoice. `id` is None for previews (`invoice.upcoming` has no id)."""
    transitions = obj.get("status_transitions")
    payment = get(_settling_payment(obj), "payment")
    status = text(obj.get("status"))
    ids, _ = discount_refs([obj.get("discount"), *items(obj.get("discounts"))])
    return Invoice(
        id=ref_id(obj),
        customer=ref_id(obj.get("customer")),
        subscription=ref_id(
            first_of(
                get(obj, "parent", "subscription_details", "subscription"), obj.get("subscription")
            )
        ),
        status=status,
        currency=currency_code(obj.get("currency")),
        livemode=flag(obj.get("livemode")),
        created=time(obj.get("created"), field="created"),
        billing_reason=text(obj.get("billing_reason")),
        collection_method=text(obj.get("collection_method")),
        amount_due=amount(obj.get("amount_due"), field="amount_due"),
        amount_paid=amount(obj.get("amount_paid"), field="amount_paid"),
        amount_remaining=amount(obj.get("amount_remaining"), field="amount_remaining"),
        subtotal=amount(obj.get("subtotal"), field="subtotal"),
        total=amount(obj.get("total"), field="total"),
        tax=_invoice_tax(obj),
        total_excluding_tax=amount(obj.get("total_excluding_tax"), field="total_excluding_tax"),
        # `paid` left the invoice in basil; an invoice is paid exactly when its status is.
        paid=(obj.get("paid") is True) if "paid" in obj else status == "paid",
        paid_out_of_band=flag(obj.get("paid_out_of_band")),
        finalized_at=time(get(transitions, "finalized_at"), field="finalized_at"),
        paid_at=time(get(transitions, "paid_at"), field="paid_at"),
        voided_at=time(get(transitions, "voided_at"), field="voided_at"),
        marked_uncollectible_at=time(
            get(transitions, "marked_uncollectible_at"), field="marked_uncollectible_at"
        ),
        # The invoice's own period is when its pending invoice items accrued, not the
        # service period: for subscription invoices read the lines' periods instead
        # (https://docs.stripe.com/api/invoices/object#invoice_object-period_start).
        period_start=time(obj.get("period_start"), field="period_start"),
        period_end=time(obj.get("period_end"), field="period_end"),
        charge=ref_id(
            first_of(
                obj.get("charge"),
                get(payment, "charge"),
                get(payment, "payment_intent", "latest_charge"),
            )
        ),
        payment_intent=ref_id(first_of(obj.get("payment_intent"), get(payment, "payment_intent"))),
        lines=tuple(read_invoice_line(line) for line in objects(obj.get("lines"))),
        lines_has_more=has_more(obj.get("lines")),
        discount_ids=ids,
    )


def read_invoice_payment(obj: StripeJson) -> InvoicePayment:
    """Read an `invoice_payment` (basil on; `invoice_payment.paid` events from 2025-05-28)."""
    payment = obj.get("payment")
    transitions = obj.get("status_transitions")
    return InvoicePayment(
        id=required_id(obj, "invoice_payment"),
        invoice=ref_id(obj.get("invoice")),
        amount_paid=amount(obj.get("amount_paid"), field="amount_paid"),
        amount_requested=amount(obj.get("amount_requested"), field="amount_requested"),
        currency=currency_code(obj.get("currency")),
        status=text(obj.get("status")),
        payment_type=text(get(payment, "type")),
        charge=ref_id(get(payment, "charge")),
        payment_intent=ref_id(get(payment, "payment_intent")),
        payment_record=ref_id(get(payment, "payment_record")),
        created=time(obj.get("created"), field="created"),
        paid_at=time(get(transitions, "paid_at"), field="paid_at"),
        canceled_at=time(get(transitions, "canceled_at"), field="canceled_at"),
        is_default=obj.get("is_default") is True,
        livemode=flag(obj.get("livemode")),
    )
