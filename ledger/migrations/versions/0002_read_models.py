"""Read models of the MRR engine: customers, subscription states, customer MRR, movements.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
EXACT = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "projection_positions",
        sa.Column("projection", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("position", ID, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("projection", "account", name="pk_projection_positions"),
    )
    op.create_table(
        "customers",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("email", sa.String(512)),
        sa.Column("name", sa.String(512)),
        sa.Column("currency", sa.String(3)),
        sa.Column("created", TIMESTAMP),
        sa.Column("deleted_at", TIMESTAMP),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("account", "customer_id", name="pk_customers"),
    )
    op.create_table(
        "subscription_states",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("subscription_id", sa.String(255), nullable=False),
        sa.Column("valid_from", TIMESTAMP, nullable=False),
        sa.Column("valid_to", TIMESTAMP),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("mrr", sa.BigInteger, nullable=False),
        sa.Column("mrr_exact", EXACT, nullable=False),
        sa.Column("potential_mrr_exact", EXACT, nullable=False),
        sa.Column("trialing", sa.Boolean, nullable=False),
        sa.Column("pause_collection", sa.Boolean, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("pending_cancellation", sa.Boolean, nullable=False),
        sa.Column("discount_ids", sa.Text, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("position", ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscription_states"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_subscription_states_account_customer_id",
        "subscription_states",
        ["account", "customer_id"],
    )
    op.create_index(
        "ix_subscription_states_account_valid_from", "subscription_states", ["account", "valid_from"]
    )
    op.create_table(
        "customer_mrr",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("valid_from", TIMESTAMP, nullable=False),
        sa.Column("valid_to", TIMESTAMP),
        sa.Column("mrr", sa.BigInteger, nullable=False),
        sa.Column("mrr_exact", EXACT, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("event_ids", sa.Text, nullable=False),
        sa.Column("positions", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customer_mrr"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_customer_mrr_account_customer_id", "customer_mrr", ["account", "customer_id"])
    op.create_index("ix_customer_mrr_account_valid_from", "customer_mrr", ["account", "valid_from"])
    op.create_table(
        "mrr_movements",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("effective_at", TIMESTAMP, nullable=False),
        sa.Column("known_at", TIMESTAMP, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subtype", sa.String(16)),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("amount_exact", EXACT, nullable=False),
        sa.Column("mrr_before_exact", EXACT, nullable=False),
        sa.Column("mrr_after_exact", EXACT, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("event_ids", sa.Text, nullable=False),
        sa.Column("positions", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mrr_movements"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_mrr_movements_account_effective_at", "mrr_movements", ["account", "effective_at"]
    )
    op.create_index(
        "ix_mrr_movements_account_customer_id", "mrr_movements", ["account", "customer_id"]
    )


def downgrade() -> None:
    for table in ("mrr_movements", "customer_mrr", "subscription_states", "customers"):
        op.drop_table(table)
    op.drop_table("projection_positions")
