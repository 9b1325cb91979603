"""Dashboard sessions ended by signing out, so that every serving process refuses them.

A session cookie is valid until it expires (dashboard/sessions.py); one whose id is listed
here is refused before then. Rows are deleted once their sessions would have expired.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions_ended",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_dashboard_sessions_ended"),
    )


def downgrade() -> None:
    op.drop_table("dashboard_sessions_ended")
