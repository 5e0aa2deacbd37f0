"""wallet levels: a customer's own low-balance level for a custom-unit (token) wallet, set over
HTTP by the product (issue 20; a money wallet's is the budget's `low_balance`)

Revision ID: 0019_wallet_levels
Revises: 0018_grant_usage_burned
Create Date: 2026-12-05 00:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0019_wallet_levels"
down_revision: str | None = "0018_grant_usage_burned"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credits_levels",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("low_balance", engine.store.base.DecimalString(), nullable=False),
        sa.Column("updated_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "unit"),
    )


def downgrade() -> None:
    op.drop_table("credits_levels")
