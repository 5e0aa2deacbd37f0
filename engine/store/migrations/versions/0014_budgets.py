"""budgets: a customer's spend budget per period, and the alerts raised once (issue 20)

Revision ID: 0014_budgets
Revises: 0013_subscription_pause
Create Date: 2026-12-04 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0014_budgets"
down_revision: str | None = "0013_subscription_pause"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credits_budgets",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("amount", engine.store.base.DecimalString(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("alerts", sa.JSON(), nullable=False),
        sa.Column("hard_stop", sa.Boolean(), nullable=False),
        sa.Column("low_balance", engine.store.base.DecimalString(), nullable=True),
        sa.Column("updated_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_table(
        "credits_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "kind", "key", name="uq_credits_alert"),
    )


def downgrade() -> None:
    op.drop_table("credits_alerts")
    op.drop_table("credits_budgets")
