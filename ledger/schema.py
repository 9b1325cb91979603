"""The ledger's SQL schema: the immutable event log and the conflicts kept beside it.

Migrations (ledger/migrations) create these tables; this module is what code queries.
Read-model tables live with their projections but share the naming convention below.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
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

IMMUTABLE_TABLES = ("ledger_events", "ledger_conflicts")

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

# Rows of these tables belong to one customer; re-deriving a customer replaces them.
CUSTOMER_READ_MODELS = (customers, subscription_states, customer_mrr, mrr_movements)
