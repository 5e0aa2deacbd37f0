"""the last four digits of a card a provider stores by token (Stripe), as the provider said

Revision ID: 0012_payment_method_last4
Revises: 0010_wallets
Create Date: 2026-12-04 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_payment_method_last4"
down_revision: str | None = "0010_wallets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pay_methods") as batch:
        batch.add_column(sa.Column("last4", sa.String(length=4), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pay_methods") as batch:
        batch.drop_column("last4")
