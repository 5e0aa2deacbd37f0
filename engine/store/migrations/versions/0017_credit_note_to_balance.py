"""credit note to_balance: what of a credit note went to the customer's balance, so a reader
(the journeys' ledger checker, an accountant) can tell a paid invoice's credit to the balance
from a refund

Revision ID: 0017_credit_note_to_balance
Revises: 0016_burn_totals
Create Date: 2026-12-04 19:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0017_credit_note_to_balance"
down_revision: str | None = "0016_burn_totals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No backfill: where an older note's money went was not recorded; it stays null.
    with op.batch_alter_table("sales_credit_notes") as batch:
        batch.add_column(sa.Column("to_balance", engine.store.base.DecimalString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sales_credit_notes") as batch:
        batch.drop_column("to_balance")
