"""burn totals: each customer's usage of the metrics that burn a token wallet, kept as it is
ingested, so the burn and the access view read one row, not the history (issue 20)

Revision ID: 0016_burn_totals
Revises: 0015_books
Create Date: 2026-12-04 19:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0016_burn_totals"
down_revision: str | None = "0015_books"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No backfill: a row is born uncounted and the first burn counts the history once.
    op.create_table(
        "sales_burn_totals",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("quantity", engine.store.base.DecimalString(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "metric"),
    )


def downgrade() -> None:
    op.drop_table("sales_burn_totals")
