"""wallets: credit grants and the immutable ledger of their entries (issue 20)

Revision ID: 0010_wallets
Revises: 0009_webhook_endpoints
Create Date: 2026-12-04 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0010_wallets"
down_revision: str | None = "0009_webhook_endpoints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sales_customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("has_wallet", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "credits_grants",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_ref", sa.String(length=100), nullable=True),
        sa.Column("amount", engine.store.base.DecimalString(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("effective_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", engine.store.base.UTCDateTime(), nullable=True),
        sa.Column("rollover", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "idempotency_key", name="uq_credits_grant_key"),
    )
    op.create_index("ix_credits_grants_customer", "credits_grants", ["customer_id", "status"], unique=False)
    op.create_table(
        "credits_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("amount", engine.store.base.DecimalString(), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["grant_id"], ["credits_grants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_credits_entries_customer", "credits_entries", ["customer_id", "id"], unique=False)
    op.create_index(op.f("ix_credits_entries_grant_id"), "credits_entries", ["grant_id"], unique=False)
    op.create_table(
        "credits_top_ups",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold", engine.store.base.DecimalString(), nullable=False),
        sa.Column("pack", sa.String(length=100), nullable=False),
        sa.Column("updated_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    # The invoice a consumption paid: an invoice's lines are read with who paid them.
    op.create_index("ix_credits_entries_invoice", "credits_entries", ["invoice_id"], unique=False)


def downgrade() -> None:
    op.drop_table("credits_top_ups")
    op.drop_table("credits_entries")
    op.drop_table("credits_grants")
    with op.batch_alter_table("sales_customers", schema=None) as batch_op:
        batch_op.drop_column("has_wallet")
