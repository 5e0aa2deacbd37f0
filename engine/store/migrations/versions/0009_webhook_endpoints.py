"""event webhooks for the product: endpoints and their deliveries (engine/webhooks)

Revision ID: 0009_webhook_endpoints
Revises: 0008_engine_secrets
Create Date: 2026-12-04 03:12:43.343477
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0009_webhook_endpoints"
down_revision: str | None = "0008_engine_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_webhook_deliveries",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("endpoint_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", engine.store.base.UTCDateTime(), nullable=True),
        sa.Column("claimed_until", engine.store.base.UTCDateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_latency_ms", sa.Integer(), nullable=True),
        sa.Column("last_attempt_at", engine.store.base.UTCDateTime(), nullable=True),
        sa.Column("replay_of", sa.String(length=64), nullable=True),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("finished_at", engine.store.base.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("event_webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_event_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_event_webhook_deliveries_lane", ["endpoint_id", "customer_id", "status", "seq"], unique=False
        )

    op.create_table(
        "event_webhook_endpoints",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("previous_secret", sa.String(length=200), nullable=True),
        sa.Column("previous_secret_until", engine.store.base.UTCDateTime(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("event_webhook_endpoints")
    with op.batch_alter_table("event_webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_event_webhook_deliveries_lane")
        batch_op.drop_index("ix_event_webhook_deliveries_due")

    op.drop_table("event_webhook_deliveries")
