"""The one place that knows Stripe's raw JSON field paths, in every API layout we receive.

Projections call these readers on `event["data"]["object"]` (or a listed object) and get
small frozen dataclasses back: amounts as int minor units or exact Fractions, times as UTC.
"""

# Layouts are told apart by which fields are present, never by `api_version`, because one
# ledger holds payloads from many versions. Checked against: basil (2025-03-31), clover
# (2025-09-30: discount coupon under `source`), dahlia (2026-03-25: decimal_string fields
# become Decimal in the SDKs only, the JSON keeps strings; 2026-07-29 adds `refund.customer`)
# and endive (2026-09-30, pinned as 2026-10-28.endive by stripe-python 16.1): its breaking
# changes touch request parameters (billing_cycle_anchor as `{type: ...}`, see
# https://docs.stripe.com/changelog/endive/2026-09-30/polymorphic-billing-cycle-anchor)
# and no field this package reads.

from ._read import StripeShapeError, from_unix, ref_id
from .customers import Customer, read_customer
from .discounts import Coupon, Discount, read_coupon, read_discount
from .dispatch import StripeRecord, customer_of, read_object
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
from .prices import Price, Tier, read_price
from .subscriptions import (
    PhaseItem,
    SchedulePhase,
    Subscription,
    SubscriptionItem,
    SubscriptionSchedule,
    read_subscription,
    read_subscription_item,
    read_subscription_schedule,
)

__all__ = [
    "BalanceTransaction",
    "Charge",
    "Coupon",
    "Customer",
    "Discount",
    "Dispute",
    "Invoice",
    "InvoiceLine",
    "InvoicePayment",
    "PhaseItem",
    "Price",
    "Refund",
    "SchedulePhase",
    "StripeRecord",
    "StripeShapeError",
    "Subscription",
    "SubscriptionItem",
    "SubscriptionSchedule",
    "Tier",
    "customer_of",
    "from_unix",
    "read_balance_transaction",
    "read_charge",
    "read_coupon",
    "read_customer",
    "read_discount",
    "read_dispute",
    "read_invoice",
    "read_invoice_line",
    "read_invoice_payment",
    "read_object",
    "read_price",
    "read_refund",
    "read_subscription",
    "read_subscription_item",
    "read_subscription_schedule",
    "ref_id",
]
