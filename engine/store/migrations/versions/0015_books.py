"""revenue recognition schedules (the books: engine/payments/books)

A head after 0012 (it was 0011 before the books were reverted and brought back), so
databases already at 0012 upgrade.

Revision ID: 0015_books
Revises: 0014_budgets
Create Date: 2026-12-04 10:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0015_books"
down_revision: str | None = "0014_budgets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pay_revenue_schedule",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.String(length=120), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(length=100), nullable=False),
        sa.Column("price_type", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billed_on", sa.Date(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("amount", engine.store.base.DecimalString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", "line_no", "month", name="uq_pay_revenue_schedule_row"),
    )
    op.create_index("ix_pay_revenue_schedule_month", "pay_revenue_schedule", ["currency", "month"])
    op.create_index("ix_pay_revenue_schedule_invoice_id", "pay_revenue_schedule", ["invoice_id"])


def downgrade() -> None:
    op.drop_index("ix_pay_revenue_schedule_invoice_id", table_name="pay_revenue_schedule")
    op.drop_index("ix_pay_revenue_schedule_month", table_name="pay_revenue_schedule")
    op.drop_table("pay_revenue_schedule")
