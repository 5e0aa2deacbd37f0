"""a subscription can be paused: asked for (it takes effect at the period end) and when it did

Revision ID: 0013_subscription_pause
Revises: 0012_payment_method_last4
Create Date: 2026-12-04 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.store.base import UTCDateTime

revision: str = "0013_subscription_pause"
down_revision: str | None = "0012_payment_method_last4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sales_subscriptions") as batch:
        batch.add_column(sa.Column("pause_at_period_end", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("paused_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sales_subscriptions") as batch:
        batch.drop_column("paused_at")
        batch.drop_column("pause_at_period_end")
