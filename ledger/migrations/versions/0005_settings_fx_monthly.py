"""Per-account settings, FX rates, and the monthly metrics table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
# Frozen copies of the column lists as of this revision.
MONEY = (
    "mrr_start", "mrr_end", "arr_end", "committed_mrr_end", "new", "expansion",
    "reactivation", "contraction", "churn", "fx_adjustment", "net_new_mrr",
    "churned_revenue", "arpu", "ltv", "gross_revenue", "refunds", "fees", "net_revenue",
    "net_volume", "tax_collected", "recurring_revenue", "usage_revenue",
    "one_time_revenue", "out_of_band_revenue",
)  # fmt: skip
RATES = (
    "customer_churn_rate", "customer_churn_rate_stripe30", "nrr", "grr",
    "gross_mrr_churn_rate", "net_mrr_churn_rate", "quick_ratio",
)  # fmt: skip
COUNTS = (
    "all_customers", "active_customers", "new_customers", "reactivated_customers",
    "churned_customers", "paused_customers", "trialing_customers", "delinquent_customers",
    "trials_started", "trials_converted", "subscriptions_canceled", "paying_subscriptions",
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "account_settings",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("account", "name", name="pk_account_settings"),
    )
    op.create_table(
        "fx_rates",
        sa.Column("reporting_currency", sa.String(3), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("rate", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("reporting_currency", "currency", "day", name="pk_fx_rates"),
    )
    decimal = sa.Numeric().with_variant(sa.String(64), "sqlite")
    op.create_table(
        "monthly_metrics",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        *(sa.Column(name, decimal) for name in MONEY + RATES),
        *(sa.Column(name, sa.Integer, nullable=False) for name in COUNTS),
        sa.Column("subscriptions_by_status", sa.Text, nullable=False),
        sa.Column("computed_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("account", "month", name="pk_monthly_metrics"),
    )


def downgrade() -> None:
    for table in ("monthly_metrics", "fx_rates", "account_settings"):
        op.drop_table(table)
