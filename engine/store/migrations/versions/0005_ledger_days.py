"""the days of its period each ledger piece covers (a change or a cancellation cuts a period)

Revision ID: 0005_ledger_days
Revises: 0004_test_clock
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_ledger_days"
down_revision: str | None = "0004_test_clock"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows written before this revision read as covering the whole period, which is
    # how they were priced then.
    with op.batch_alter_table("sales_period_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("charge_from", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("charge_until", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sales_period_ledger", schema=None) as batch_op:
        batch_op.drop_column("charge_until")
        batch_op.drop_column("charge_from")
