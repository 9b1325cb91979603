"""The immutable event log and its conflicts table, guarded by triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
IMMUTABLE = ("ledger_events", "ledger_conflicts")


def upgrade() -> None:
    op.create_table(
        "ledger_events",
        sa.Column("position", POSITION, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(255)),
        sa.Column("customer_id", sa.String(255)),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("api_version", sa.String(64)),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_ledger_events"),
        sa.UniqueConstraint("account", "event_id", name="uq_ledger_events_account_event_id"),
        sa.CheckConstraint(
            "source IN ('webhook', 'backfill')", name="ck_ledger_events_source"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_ledger_events_account_customer_id_position",
        "ledger_events",
        ["account", "customer_id", "position"],
    )
    op.create_index(
        "ix_ledger_events_account_object_id_position",
        "ledger_events",
        ["account", "object_id", "position"],
    )
    op.create_table(
        "ledger_conflicts",
        sa.Column("id", POSITION, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("original_position", POSITION, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_conflicts"),
        sa.ForeignKeyConstraint(
            ["original_position"],
            ["ledger_events.position"],
            name="fk_ledger_conflicts_original_position_ledger_events",
        ),
        sa.UniqueConstraint(
            "account",
            "event_id",
            "content_hash",
            name="uq_ledger_conflicts_account_event_id_content_hash",
        ),
        sqlite_autoincrement=True,
    )
    if op.get_bind().dialect.name == "postgresql":
        _guard_postgresql()
    else:
        _guard_sqlite()


def _guard_postgresql() -> None:
    # The database itself refuses to rewrite history, whoever connects.
    op.execute(
        """
        CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in IMMUTABLE:
        op.execute(
            f"CREATE TRIGGER {table}_refuse_change BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )


def _guard_sqlite() -> None:
    # SQLite has no TRUNCATE; a DELETE without WHERE still fires the row trigger.
    for table in IMMUTABLE:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_refuse_{operation.lower()} BEFORE {operation} "
                f"ON {table} BEGIN SELECT RAISE(ABORT, "
                f"'ledger is append-only: {operation} on {table} refused'); END"
            )


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: its rows are the source of truth")
