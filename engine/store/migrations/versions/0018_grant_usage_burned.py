"""grant usage_burned: what usage burned of each grant, kept beside the grant by the burn, so
the burn and the access view read one row per grant instead of the wallet's usage entries,
which grow with every burn (issue 20)

Revision ID: 0018_grant_usage_burned
Revises: 0017_credit_note_to_balance
Create Date: 2026-12-04 22:50:00
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision: str = "0018_grant_usage_burned"
down_revision: str | None = "0017_credit_note_to_balance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_grants = sa.table("credits_grants", sa.column("id", sa.String()),
                   sa.column("usage_burned", engine.store.base.DecimalString()))
_entries = sa.table("credits_entries", sa.column("grant_id", sa.String()), sa.column("kind", sa.String()),
                    sa.column("invoice_id", sa.String()), sa.column("amount", engine.store.base.DecimalString()))


def upgrade() -> None:
    with op.batch_alter_table("credits_grants") as batch:
        batch.add_column(sa.Column("usage_burned", engine.store.base.DecimalString(), nullable=False,
                                   server_default="0"))
    # Backfill from the entries: usage consumptions are those naming no invoice. Summed in
    # Python (SQLite's SUM over decimal strings would go through float); exact.
    conn = op.get_bind()
    burned: dict[str, Decimal] = {}
    rows = conn.execute(sa.select(_entries.c.grant_id, _entries.c.amount)
                        .where(_entries.c.kind == "consumption", _entries.c.invoice_id.is_(None)))
    for grant_id, amount in rows:
        burned[grant_id] = burned.get(grant_id, Decimal(0)) - amount
    for grant_id, amount in sorted(burned.items()):
        conn.execute(sa.update(_grants).where(_grants.c.id == grant_id).values(usage_burned=amount))


def downgrade() -> None:
    with op.batch_alter_table("credits_grants") as batch:
        batch.drop_column("usage_burned")
