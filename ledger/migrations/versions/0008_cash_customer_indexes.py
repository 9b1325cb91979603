"""Index the cash read models by customer.

The runner replaces a customer's rows by customer id; without these indexes each chunk of
customers scanned every row of the account's cash tables (1.8 s a query at 20,000
customers), so catching up cost more the larger the account.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("invoices", "invoice_status_history", "payments", "refunds", "disputes")


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_account_customer_id", table, ["account", "customer_id"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_account_customer_id", table_name=table)
