"""Cash read models: invoices and their status history, payments, refunds, disputes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def _common() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("position", ID, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("subscription_id", sa.String(255)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("billing_reason", sa.String(64)),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("finalized_at", TIMESTAMP),
        sa.Column("paid_at", TIMESTAMP),
        sa.Column("voided_at", TIMESTAMP),
        sa.Column("marked_uncollectible_at", TIMESTAMP),
        sa.Column("subtotal", sa.BigInteger, nullable=False),
        sa.Column("tax", sa.BigInteger, nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("amount_paid", sa.BigInteger, nullable=False),
        sa.Column("paid_out_of_band", sa.Boolean, nullable=False),
        sa.Column("recurring_amount", sa.BigInteger, nullable=False),
        sa.Column("usage_amount", sa.BigInteger, nullable=False),
        sa.Column("one_time_amount", sa.BigInteger, nullable=False),
        *_common(),
        sa.PrimaryKeyConstraint("account", "invoice_id", name="pk_invoices"),
    )
    op.create_index("ix_invoices_account_paid_at", "invoices", ["account", "paid_at"])
    op.create_table(
        "invoice_status_history",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("invoice_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("effective_at", TIMESTAMP, nullable=False),
        *_common(),
        sa.PrimaryKeyConstraint("id", name="pk_invoice_status_history"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_invoice_status_history_account_invoice_id",
        "invoice_status_history",
        ["account", "invoice_id"],
    )
    op.create_table(
        "payments",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("charge_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("invoice_id", sa.String(255)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("amount_refunded", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("paid", sa.Boolean, nullable=False),
        sa.Column("paid_at", TIMESTAMP, nullable=False),
        sa.Column("fee", sa.BigInteger),
        sa.Column("balance_transaction_id", sa.String(255)),
        *_common(),
        sa.PrimaryKeyConstraint("account", "charge_id", name="pk_payments"),
    )
    op.create_index("ix_payments_account_paid_at", "payments", ["account", "paid_at"])
    op.create_table(
        "refunds",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("refund_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("charge_id", sa.String(255)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("refunded_at", TIMESTAMP, nullable=False),
        sa.Column("fee", sa.BigInteger),
        sa.Column("balance_transaction_id", sa.String(255)),
        *_common(),
        sa.PrimaryKeyConstraint("account", "refund_id", name="pk_refunds"),
    )
    op.create_index("ix_refunds_account_refunded_at", "refunds", ["account", "refunded_at"])
    op.create_table(
        "disputes",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("dispute_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("charge_id", sa.String(255)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("lost", sa.Boolean, nullable=False),
        sa.Column("closed_at", TIMESTAMP),
        sa.Column("fee", sa.BigInteger, nullable=False),
        *_common(),
        sa.PrimaryKeyConstraint("account", "dispute_id", name="pk_disputes"),
    )


def downgrade() -> None:
    for table in ("disputes", "refunds", "payments", "invoice_status_history", "invoices"):
        op.drop_table(table)
