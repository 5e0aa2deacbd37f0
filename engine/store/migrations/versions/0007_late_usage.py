"""late usage waiting to be billed: when it arrived, per subscription (the billing run bills it
the next day, for every closed period: a cancelled one, one cut short, one renewed)

Revision ID: 0007_late_usage
Revises: 0006_bank_reconciliation
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.store.base import UTCDateTime

revision: str = "0007_late_usage"
down_revision: str | None = "0006_bank_reconciliation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: nothing waits until usage arrives late after this revision. Late usage that
    # arrived before it is still billed with the subscription's next document, as it was.
    with op.batch_alter_table("sales_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late_usage_since", UTCDateTime(), nullable=True))
        batch_op.create_index("ix_sales_subscriptions_late", ["late_usage_since"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sales_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_subscriptions_late")
        batch_op.drop_column("late_usage_since")
