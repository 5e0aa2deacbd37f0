"""event counters of every process (GET /metrics in the multi-process shape)

Revision ID: 0003_event_counters
Revises: 0002_pricing
Create Date: 2026-12-03 14:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0003_event_counters"
down_revision: str | None = "0002_pricing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_counters",
        sa.Column("process", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=100), nullable=False),
        sa.Column("counter", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("process", "queue", "counter"),
    )


def downgrade() -> None:
    op.drop_table("event_counters")
