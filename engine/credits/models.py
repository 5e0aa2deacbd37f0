"""The wallet's tables: grants (what was credited, on which terms) and entries (the immutable
ledger: every grant, consumption, expiry and void is a row; the balance is their sum)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.base import Base

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class Grant(Base):
    """Credit given to one customer: by a pack bought, a promotion, an operator, a top-up.
    Its terms never change; what is left of it is the sum of its entries. `usage_burned` is
    what usage burned of it (the sum of its usage `consumption` entries, kept by the burn in
    the transaction that writes them, under the grant's lock): the burn and the access view
    read it instead of the entries, which grow with every burn (docs/credits.md, Token wallets)."""

    __tablename__ = "credits_grants"
    # A pack's invoice, a top-up's trigger, a redelivered event: one key, one grant.
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key", name="uq_credits_grant_key"),
        Index("ix_credits_grants_customer", "customer_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(32))  # a currency or a custom unit (tokens)
    source: Mapped[str] = mapped_column(String(20))  # pack | promotion | operator | top_up
    source_ref: Mapped[str | None] = mapped_column(String(100), default=None)  # the pack's or grant's id
    amount: Mapped[Decimal]
    priority: Mapped[int] = mapped_column(Integer, default=100)
    effective_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    rollover: Mapped[str] = mapped_column(String(10), default="all")  # none | all
    # pending (a pack whose invoice is not paid yet) -> active -> void | expired
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(500), default="")
    invoice_id: Mapped[str | None] = mapped_column(String(64), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime]
    usage_burned: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")


class Entry(Base):
    """One immutable movement of a grant: + on grant, - on consumption, expiry, void and reduced
    (a credit note on part of a pack's invoice)."""

    __tablename__ = "credits_entries"
    __table_args__ = (
        Index("ix_credits_entries_customer", "customer_id", "id"),
        Index("ix_credits_entries_invoice", "invoice_id"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    grant_id: Mapped[str] = mapped_column(ForeignKey("credits_grants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # grant | consumption | expiry | void | reduced
    amount: Mapped[Decimal]  # signed
    invoice_id: Mapped[str | None] = mapped_column(String(64), default=None)
    line: Mapped[int | None] = mapped_column(Integer, default=None)  # the invoice line's position it paid
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime]


class TopUp(Base):
    """A customer's automatic top-up: below `threshold`, `pack` is bought (once per episode)."""

    __tablename__ = "credits_top_ups"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    threshold: Mapped[Decimal]
    pack: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime]


class Budget(Base):
    """A customer's spend budget per billing period, in their currency: alerts at `alerts`
    percent (ascending, JSON list of integers), a hard stop at 100 % when `hard_stop`."""

    __tablename__ = "credits_budgets"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    alerts: Mapped[list[int]] = mapped_column(JSON, default=list)
    hard_stop: Mapped[bool] = mapped_column(Boolean, default=False)
    low_balance: Mapped[Decimal | None] = mapped_column(default=None)  # the wallet's low-balance level
    updated_at: Mapped[datetime]


class Level(Base):
    """A customer's own low-balance level for a custom-unit (token) wallet, in that unit; a money
    wallet's is the budget's `low_balance` (docs/credits.md, Token wallets)."""

    __tablename__ = "credits_levels"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit: Mapped[str] = mapped_column(String(32), primary_key=True)
    low_balance: Mapped[Decimal]
    updated_at: Mapped[datetime]


class Alert(Base):
    """An alert raised once: (customer, kind, key) is unique, so a redelivered or concurrent
    trigger finds the row and says nothing. Kinds: `spend` (key: period start and percent),
    `balance_low` and `exhausted` (key: unit and the wallet's last grant entry, so each new
    grant starts a new episode)."""

    __tablename__ = "credits_alerts"
    __table_args__ = (UniqueConstraint("customer_id", "kind", "key", name="uq_credits_alert"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
