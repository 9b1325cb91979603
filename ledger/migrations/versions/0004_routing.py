"""Routing tables for events whose object names no customer.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "object_owners",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("account", "object_id", name="pk_object_owners"),
    )
    op.create_table(
        "event_routes",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("position", ID, nullable=False),
        sa.Column("refers_to", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255)),
        sa.PrimaryKeyConstraint("account", "position", name="pk_event_routes"),
    )
    op.create_index(
        "ix_event_routes_account_customer_id", "event_routes", ["account", "customer_id"]
    )
    op.create_index("ix_event_routes_account_refers_to", "event_routes", ["account", "refers_to"])


def downgrade() -> None:
    op.drop_table("event_routes")
    op.drop_table("object_owners")
