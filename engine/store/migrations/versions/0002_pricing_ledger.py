"""per-line discount and tax, the period ledger, promotion redemptions

Revision ID: 0002_pricing
Revises: 0001
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0002_pricing"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sales_period_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("part", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("credit", sa.Boolean(), nullable=False),
        sa.Column("document_id", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.String(length=100), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("quantity", engine.store.base.DecimalString(), nullable=False),
        sa.Column("billed", sa.JSON(), nullable=False),
        sa.Column("discounts", sa.JSON(), nullable=False),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sales_period_ledger", schema=None) as batch_op:
        batch_op.create_index("ix_sales_ledger_sub_period", ["subscription_id", "period_start"], unique=False)
    with op.batch_alter_table("sales_invoice_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("discount", engine.store.base.DecimalString(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("tax", engine.store.base.DecimalString(), nullable=False, server_default="0"))
    with op.batch_alter_table("sales_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("promotions", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("sales_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("promotions")
    with op.batch_alter_table("sales_invoice_lines", schema=None) as batch_op:
        batch_op.drop_column("tax")
        batch_op.drop_column("discount")
    with op.batch_alter_table("sales_period_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_ledger_sub_period")
    op.drop_table("sales_period_ledger")
