"""Checkpoints of replay runs, so an interrupted backfill resumes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replay_checkpoints",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("window", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("cursor", sa.String(255)),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("fetched", sa.Integer, nullable=False),
        sa.Column("appended", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", "window", "resource", name="pk_replay_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("replay_checkpoints")
