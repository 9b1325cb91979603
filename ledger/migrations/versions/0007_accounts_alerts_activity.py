"""Accounts, alerts and their firings, and the activity stream.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("api_key_encrypted", sa.Text),
        sa.Column("webhook_secrets_encrypted", sa.Text),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_accounts"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("condition", sa.String(8), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("webhook_url", sa.Text),
        sa.Column("firing", sa.Boolean, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "alert_firings",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", ID, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("fired_at", TIMESTAMP, nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("observed", sa.String(64)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("delivered", sa.Boolean, nullable=False),
        sa.Column("delivery_error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_alert_firings"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "activity",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("identity", sa.String(512), nullable=False),
        sa.Column("event_name", sa.String(64), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("subscription_id", sa.String(255)),
        sa.Column("invoice_id", sa.String(255)),
        sa.Column("amount", sa.BigInteger),
        sa.Column("currency", sa.String(3)),
        sa.Column("billing_months", sa.String(32)),
        sa.Column("plan", sa.String(512)),
        sa.Column("mrr_before_exact", sa.String(128)),
        sa.Column("mrr_after_exact", sa.String(128)),
        sa.Column("cancellation_reason", sa.String(64)),
        sa.Column("cancellation_feedback", sa.String(64)),
        sa.Column("cancellation_comment", sa.Text),
        sa.Column("event_ids", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_activity"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_activity_account_occurred_at", "activity", ["account", "occurred_at"])
    op.create_index("ix_activity_account_customer_id", "activity", ["account", "customer_id"])


def downgrade() -> None:
    for table in ("activity", "alert_firings", "alerts", "accounts"):
        op.drop_table(table)
