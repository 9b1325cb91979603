"""Immutability, really: REPLACE cannot rewrite the ledger on SQLite, and PostgreSQL lists
the service roles that may append to it.

SQLite: `INSERT OR REPLACE` / `REPLACE INTO` resolve a conflict by deleting the old row, and SQLite
fires no DELETE trigger for that (unless a connection sets recursive_triggers, which a
user's sqlite3 shell does not). A BEFORE INSERT trigger sees the row before any conflict
is resolved, on every connection: a row whose key is taken is skipped (RAISE(IGNORE), so
the append path's ON CONFLICT DO NOTHING still absorbs redeliveries, and a REPLACE or an
upsert of a stored event changes nothing); a row claiming a taken position is refused.

PostgreSQL: its REPLACE equivalents (ON CONFLICT DO UPDATE, MERGE) already go through the
UPDATE and DELETE triggers of 0001; but the owner may disable those, so the service runs as
a role that is not the owner (ledger/roles.py). `service_roles` lists the roles made, so
each upgrade grants them the tables later revisions add.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# table: (primary key, the unique key a redelivery collides on)
GUARDED = {
    "ledger_events": ("position", ("account", "event_id")),
    "ledger_conflicts": ("id", ("account", "event_id", "content_hash")),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_table(
            "service_roles",
            sa.Column("name", sa.String(63), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("name", name="pk_service_roles"),
        )
        return
    for table, (primary_key, unique_key) in GUARDED.items():
        same_key = " AND ".join(f"{column} = NEW.{column}" for column in unique_key)
        op.execute(
            f"CREATE TRIGGER {table}_refuse_taken_{primary_key} BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {primary_key} = NEW.{primary_key}) "
            f"BEGIN SELECT RAISE(ABORT, 'ledger is append-only: {table} {primary_key} "
            "is taken, REPLACE refused'); END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_keep_stored_row BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {same_key}) "
            "BEGIN SELECT RAISE(IGNORE); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_table("service_roles")
        return
    for table, (primary_key, _) in GUARDED.items():
        op.execute(f"DROP TRIGGER {table}_refuse_taken_{primary_key}")
        op.execute(f"DROP TRIGGER {table}_keep_stored_row")
