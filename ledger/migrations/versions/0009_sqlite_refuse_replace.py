"""SQLite: REPLACE and upserts cannot rewrite the ledger either.

`INSERT OR REPLACE` / `REPLACE INTO` resolve a conflict by deleting the old row, and SQLite
fires no DELETE trigger for that (unless a connection sets recursive_triggers, which a
user's sqlite3 shell does not). A BEFORE INSERT trigger sees the row before any conflict
is resolved, on every connection: a row whose key is taken is skipped (RAISE(IGNORE), so
the append path's ON CONFLICT DO NOTHING still absorbs redeliveries, and a REPLACE or an
upsert of a stored event changes nothing); a row claiming a taken position is refused.
PostgreSQL needs nothing here: its REPLACE equivalents (ON CONFLICT DO UPDATE, MERGE) go
through the UPDATE and DELETE triggers of 0001.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

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
    if op.get_bind().dialect.name != "sqlite":
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
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, (primary_key, _) in GUARDED.items():
        op.execute(f"DROP TRIGGER {table}_refuse_taken_{primary_key}")
        op.execute(f"DROP TRIGGER {table}_keep_stored_row")
