"""Projection errors: the customers whose events cannot be derived, quarantined.

One row per account and customer while its derivation fails; the runner deletes it once
the customer derives again (docs/read-models.md, "projection_errors").

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projection_errors",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("event_ids", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", "customer_id", name="pk_projection_errors"),
    )


def downgrade() -> None:
    op.drop_table("projection_errors")
