"""the stored test clock every process of a system reads

Revision ID: 0004_test_clock
Revises: 0003_event_counters
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0004_test_clock"
down_revision: str | None = "0003_event_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "test_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("now", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("test_clock")
