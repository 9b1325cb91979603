"""The ledger's SQL schema: the immutable event log and the conflicts kept beside it.

Migrations (ledger/migrations) create these tables; this module is what code queries.
Read-model tables live with their projections but share the naming convention below.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Named constraints let later migrations say which constraint they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both engines.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so values are stored as
    naive UTC and handed back aware. Naive input is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-assigns an INTEGER PRIMARY KEY (the rowid); PostgreSQL wants bigint.
Position = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ledger_events = Table(
    "ledger_events",
    metadata,
    # One total order for every reader, separate from Stripe's own `created` time.
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("type", String(128), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("object_id", String(255)),
    Column("customer_id", String(255)),
    Column("livemode", Boolean, nullable=False),
    Column("api_version", String(64)),
    Column("created", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("source", String(16), nullable=False),
    # sha256 of the payload without fields that differ between deliveries of one event.
    Column("content_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    UniqueConstraint("account", "event_id"),
    sqlite_autoincrement=True,
)
Index(None, ledger_events.c.account, ledger_events.c.customer_id, ledger_events.c.position)
Index(None, ledger_events.c.account, ledger_events.c.object_id, ledger_events.c.position)

ledger_conflicts = Table(
    "ledger_conflicts",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("original_position", Position, ForeignKey("ledger_events.position"), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("source", String(16), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    UniqueConstraint("account", "event_id", "content_hash"),
    sqlite_autoincrement=True,
)


# --- Per-account choices and reference data (not derived: set by the operator).

# Accounts beyond the environment's `default`: each with its own webhook URL, secrets
# (encrypted with LEDGER_SECRET_KEY), mode and settings. Disabled accounts keep their
# history and figures but receive and fetch nothing.
accounts = Table(
    "accounts",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("mode", String(8), nullable=False),
    Column("api_key_encrypted", Text),
    Column("webhook_secrets_encrypted", Text),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Alerts on any figure: a threshold (`above`/`below` a value) or a change (`up`/`down`/
# `either` by a percentage against the previous period). Each fires once per crossing.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("condition", String(8), nullable=False),
    Column("value", String(64), nullable=False),
    Column("period", String(16), nullable=False),
    Column("webhook_url", Text),
    Column("firing", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

alert_firings = Table(
    "alert_firings",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("alert_id", Position, nullable=False),
    Column("account", String(64), nullable=False),
    Column("fired_at", UTCDateTime, nullable=False),
    Column("metric", String(64), nullable=False),
    Column("observed", String(64)),
    Column("message", Text, nullable=False),
    Column("delivered", Boolean, nullable=False),
    Column("delivery_error", Text),
    sqlite_autoincrement=True,
)

account_settings = Table(
    "account_settings",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One unit of `currency` is worth `rate` units of `reporting_currency` on `day` (and
# after, until the next rate). `rate` is an exact decimal string.
fx_rates = Table(
    "fx_rates",
    metadata,
    Column("reporting_currency", String(3), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("rate", String(64), nullable=False),
)

# Where an interrupted `replay` resumes: per account, window and resource, the last
# object id stored (lists are newest first, so the next page starts after it).
replay_checkpoints = Table(
    "replay_checkpoints",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("window", String(64), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("cursor", String(255)),
    Column("done", Boolean, nullable=False),
    Column("fetched", Integer, nullable=False),
    Column("appended", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# --- Read models: derived from ledger_events alone, rebuilt at will (stripe-ledger rebuild).
# Money columns hold integer minor units rounded half-even (for SQL) beside the exact value
# as a fraction "numerator/denominator" (from which our figures are computed); every row
# names the ledger events behind it (`event_ids`, `positions`: JSON arrays).

projection_positions = Table(
    "projection_positions",
    metadata,
    Column("projection", String(64), primary_key=True),
    Column("account", String(64), primary_key=True),
    Column("position", Position, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Customers whose events cannot be derived (projections/quarantine.py): their read-model
# rows are left as they were and every other customer goes on. `event_ids` (a JSON array)
# names the event that made the derivation fail, or all of the customer's events when no
# single one can be named; `error` is one line without payload data. The row goes once the
# customer derives again. Not a read model: a rebuild does not drop it.
projection_errors = Table(
    "projection_errors",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("customer_id", String(255), primary_key=True),
    Column("event_ids", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("failed_at", UTCDateTime, nullable=False),
)

# Routing for events whose object names no customer (a refund before 2026-07-29, a balance
# transaction, an invoice payment, a dispute): the customer is found through the object
# they refer to. `customer_id` is NULL while that object is not known yet.
object_owners = Table(
    "object_owners",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("object_id", String(255), primary_key=True),
    Column("customer_id", String(255), nullable=False),
)

event_routes = Table(
    "event_routes",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("position", Position, primary_key=True),
    Column("refers_to", String(255), nullable=False),
    Column("customer_id", String(255)),
)
Index(None, event_routes.c.account, event_routes.c.customer_id)
Index(None, event_routes.c.account, event_routes.c.refers_to)

customers = Table(
    "customers",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("customer_id", String(255), primary_key=True),
    Column("email", String(512)),
    Column("name", String(512)),
    Column("currency", String(3)),
    Column("created", UTCDateTime),
    Column("deleted_at", UTCDateTime),
    Column("first_seen", UTCDateTime, nullable=False),
)

subscription_states = Table(
    "subscription_states",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("subscription_id", String(255), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime),
    Column("status", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("mrr", BigInteger, nullable=False),
    Column("mrr_exact", String(128), nullable=False),
    Column("potential_mrr_exact", String(128), nullable=False),
    Column("trialing", Boolean, nullable=False),
    Column("pause_collection", Boolean, nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("pending_cancellation", Boolean, nullable=False),
    Column("discount_ids", Text, nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("position", Position, nullable=False),
)
Index(None, subscription_states.c.account, subscription_states.c.customer_id)
Index(None, subscription_states.c.account, subscription_states.c.valid_from)

customer_mrr = Table(
    "customer_mrr",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime),
    Column("mrr", BigInteger, nullable=False),
    Column("mrr_exact", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("state", String(16), nullable=False),
    Column("event_ids", Text, nullable=False),
    Column("positions", Text, nullable=False),
)
Index(None, customer_mrr.c.account, customer_mrr.c.customer_id)
Index(None, customer_mrr.c.account, customer_mrr.c.valid_from)

mrr_movements = Table(
    "mrr_movements",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("effective_at", UTCDateTime, nullable=False),
    Column("known_at", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subtype", String(16)),
    Column("amount", BigInteger, nullable=False),
    Column("amount_exact", String(128), nullable=False),
    Column("mrr_before_exact", String(128), nullable=False),
    Column("mrr_after_exact", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("event_ids", Text, nullable=False),
    Column("positions", Text, nullable=False),
)
Index(None, mrr_movements.c.account, mrr_movements.c.effective_at)
Index(None, mrr_movements.c.account, mrr_movements.c.customer_id)

# --- Cash read models: what was billed, paid, refunded and disputed, by the date of each
# cash event. Amounts are integer minor units of the row's own currency.

invoices = Table(
    "invoices",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("invoice_id", String(255), primary_key=True),
    Column("customer_id", String(255), nullable=False),
    Column("subscription_id", String(255)),
    Column("status", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("billing_reason", String(64)),
    Column("created", UTCDateTime, nullable=False),
    Column("finalized_at", UTCDateTime),
    Column("paid_at", UTCDateTime),
    Column("voided_at", UTCDateTime),
    Column("marked_uncollectible_at", UTCDateTime),
    Column("subtotal", BigInteger, nullable=False),
    Column("tax", BigInteger, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("amount_paid", BigInteger, nullable=False),
    Column("paid_out_of_band", Boolean, nullable=False),
    # The invoice's lines by kind, before tax: licensed recurring prices (prorations
    # included), metered usage, and one-time items.
    Column("recurring_amount", BigInteger, nullable=False),
    Column("usage_amount", BigInteger, nullable=False),
    Column("one_time_amount", BigInteger, nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("position", Position, nullable=False),
)
Index(None, invoices.c.account, invoices.c.paid_at)
Index(None, invoices.c.account, invoices.c.customer_id)

invoice_status_history = Table(
    "invoice_status_history",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("invoice_id", String(255), nullable=False),
    Column("status", String(32), nullable=False),
    Column("effective_at", UTCDateTime, nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("position", Position, nullable=False),
)
Index(None, invoice_status_history.c.account, invoice_status_history.c.invoice_id)
Index(None, invoice_status_history.c.account, invoice_status_history.c.customer_id)

payments = Table(
    "payments",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("charge_id", String(255), primary_key=True),
    Column("customer_id", String(255), nullable=False),
    Column("invoice_id", String(255)),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("paid", Boolean, nullable=False),
    # The cash date: the balance transaction's `created` where known, else the charge's.
    Column("paid_at", UTCDateTime, nullable=False),
    Column("fee", BigInteger),  # from the balance transaction; NULL until it is known
    Column("balance_transaction_id", String(255)),
    Column("event_id", String(255), nullable=False),
    Column("position", Position, nullable=False),
)
Index(None, payments.c.account, payments.c.paid_at)
Index(None, payments.c.account, payments.c.customer_id)

refunds = Table(
    "refunds",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("refund_id", String(255), primary_key=True),
    Column("customer_id", String(255), nullable=False),
    Column("charge_id", String(255)),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("refunded_at", UTCDateTime, nullable=False),  # the refund's date, never back-dated
    Column("fee", BigInteger),
    Column("balance_transaction_id", String(255)),
    Column("event_id", String(255), nullable=False),
    Column("position", Position, nullable=False),
)
Index(None, refunds.c.account, refunds.c.refunded_at)
Index(None, refunds.c.account, refunds.c.customer_id)

disputes = Table(
    "disputes",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("dispute_id", String(255), primary_key=True),
    Column("customer_id", String(255), nullable=False),
    Column("charge_id", String(255)),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("lost", Boolean, nullable=False),
    Column("closed_at", UTCDateTime),  # when it was lost (the loss's cash date)
    Column("fee", BigInteger, nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("position", Position, nullable=False),
)
Index(None, disputes.c.account, disputes.c.customer_id)

# The activity stream (what the old KISSmetrics import sent, without its shortcomings):
# one row per billing, upgrade, downgrade, cancellation and reactivation of every
# subscription of a customer, named by the customer's email where Stripe has one.
activity = Table(
    "activity",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("identity", String(512), nullable=False),
    Column("event_name", String(64), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("subscription_id", String(255)),
    Column("invoice_id", String(255)),
    Column("amount", BigInteger),  # minor units of `currency`: what was actually billed
    Column("currency", String(3)),
    Column("billing_months", String(32)),  # 4 places: 1 monthly, 12 yearly, 0.2308 weekly
    Column("plan", String(512)),
    Column("mrr_before_exact", String(128)),
    Column("mrr_after_exact", String(128)),
    Column("cancellation_reason", String(64)),
    Column("cancellation_feedback", String(64)),
    Column("cancellation_comment", Text),
    Column("event_ids", Text, nullable=False),
)
Index(None, activity.c.account, activity.c.occurred_at)
Index(None, activity.c.account, activity.c.customer_id)

# One row per account and calendar month, every figure of `stripe-ledger metrics --json`:
# money and rates as exact decimal strings (NUMERIC on PostgreSQL), counts as integers.
MONTHLY_MONEY = (
    "mrr_start", "mrr_end", "arr_end", "committed_mrr_end", "new", "expansion",
    "reactivation", "contraction", "churn", "fx_adjustment", "net_new_mrr",
    "churned_revenue", "arpu", "ltv", "gross_revenue", "refunds", "fees", "net_revenue",
    "net_volume", "tax_collected", "recurring_revenue", "usage_revenue",
    "one_time_revenue", "out_of_band_revenue",
)  # fmt: skip
MONTHLY_RATES = (
    "customer_churn_rate", "customer_churn_rate_stripe30", "nrr", "grr",
    "gross_mrr_churn_rate", "net_mrr_churn_rate", "quick_ratio",
)  # fmt: skip
MONTHLY_COUNTS = (
    "all_customers", "active_customers", "new_customers", "reactivated_customers",
    "churned_customers", "paused_customers", "trialing_customers", "delinquent_customers",
    "trials_started", "trials_converted", "subscriptions_canceled", "paying_subscriptions",
)  # fmt: skip


class ExactDecimal(TypeDecorator[str]):
    """A decimal string kept exact: NUMERIC on PostgreSQL, text on SQLite (which has no
    decimal type and would store a float)."""

    impl = String(64)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value)


monthly_metrics = Table(
    "monthly_metrics",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("month", Date, primary_key=True),
    Column("currency", String(3), nullable=False),
    *(Column(name, ExactDecimal) for name in MONTHLY_MONEY + MONTHLY_RATES),
    *(Column(name, Integer, nullable=False) for name in MONTHLY_COUNTS),
    Column("subscriptions_by_status", Text, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
)

# Dashboard sessions ended by signing out (dashboard/sessions.py), refused by every serving
# process until they would have expired anyway. Declared here, with every table, so that a
# service role is granted it (ledger/roles.py).
dashboard_sessions_ended = Table(
    "dashboard_sessions_ended",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("ended_at", UTCDateTime, nullable=False),
)

# Rows of these tables belong to one customer; re-deriving a customer replaces them.
CASH_READ_MODELS = (invoices, invoice_status_history, payments, refunds, disputes)
CUSTOMER_READ_MODELS = (
    customers,
    subscription_states,
    customer_mrr,
    mrr_movements,
    activity,
    *CASH_READ_MODELS,
)
