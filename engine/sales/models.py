"""The tables of the sales subsystem. Other subsystems read them through the query
functions of `engine.sales`, never directly."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from engine.store.base import Base

_BIGINT = BigInteger().with_variant(Integer, "sqlite")
ZERO = Decimal(0)


class CatalogVersion(Base):
    """One published, immutable version of a catalog."""

    __tablename__ = "sales_catalog_versions"
    __table_args__ = (UniqueConstraint("catalog", "version", name="uq_catalog_version"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    catalog: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    author: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime]
    plans: Mapped[list[str]] = mapped_column(JSON)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(500), default="")


class PlanOwner(Base):
    """A plan id names one plan across every published catalog: the catalog that owns it."""

    __tablename__ = "sales_plan_owners"

    plan_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    catalog: Mapped[str] = mapped_column(String(100))


class Customer(Base):
    __tablename__ = "sales_customers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    phone: Mapped[str | None] = mapped_column(String(40), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    segment: Mapped[str | None] = mapped_column(String(100), default=None)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    tax_id: Mapped[str | None] = mapped_column(String(64), default=None)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    payment_method: Mapped[str | None] = mapped_column(String(200), default=None)
    # Credit from credit notes (proration, cancellation) not yet applied to an invoice.
    credit_balance: Mapped[Decimal] = mapped_column(default=ZERO)
    # Ever granted credit (engine.credits): only then does finalizing an invoice read the
    # wallet, so invoices of customers without one cost no query more.
    has_wallet: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]


class Subscription(Base):
    __tablename__ = "sales_subscriptions"
    __table_args__ = (
        Index("ix_sales_subscriptions_due", "next_run_at"),
        Index("ix_sales_subscriptions_late", "late_usage_since"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("sales_customers.id"), index=True)
    plan_id: Mapped[str] = mapped_column(String(100))
    catalog: Mapped[str] = mapped_column(String(100))
    catalog_version_id: Mapped[int] = mapped_column(ForeignKey("sales_catalog_versions.id"))
    interval: Mapped[str] = mapped_column(String(10))
    quantity: Mapped[Decimal]
    # trialing | active | paused | canceled | completed (one-time purchase)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    start_date: Mapped[date] = mapped_column(Date)
    trial_end: Mapped[date | None] = mapped_column(Date, default=None)
    trial_notice_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    # Periods are computed from the anchor (calendar-correct: Jan 31 -> Feb 28 -> Mar 31).
    anchor: Mapped[date] = mapped_column(Date)
    period_index: Mapped[int] = mapped_column(Integer, default=0)
    period_start: Mapped[date | None] = mapped_column(Date, default=None)
    period_end: Mapped[date | None] = mapped_column(Date, default=None)
    # When the billing run has work for this subscription; None once it has ended.
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_billed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Late usage waiting: when usage dated in a period already billed (or whose close was
    # due) first arrived since the last document that priced late usage. The billing run
    # bills it at its first run after the next midnight UTC (docs/sales.md, "Late usage").
    late_usage_since: Mapped[datetime | None] = mapped_column(default=None)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    # A pause asked for takes effect when the period paid for ends (docs/sales.md, "Pausing");
    # `paused_at` is when it did (None while active).
    pause_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_at: Mapped[datetime | None] = mapped_column(default=None)
    canceled_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # Changes that take effect at the next period: a downgrade, a catalog migration.
    pending_plan_id: Mapped[str | None] = mapped_column(String(100), default=None)
    pending_quantity: Mapped[Decimal | None] = mapped_column(default=None)
    pending_version_id: Mapped[int | None] = mapped_column(ForeignKey("sales_catalog_versions.id"), default=None)
    coupon_code: Mapped[str | None] = mapped_column(String(100), default=None)
    # Periods opened so far (0 for the first); a repeating coupon counts them.
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    coupon_first_cycle: Mapped[int | None] = mapped_column(Integer, default=None)
    payment_method: Mapped[str | None] = mapped_column(String(200), default=None)
    changes: Mapped[int] = mapped_column(Integer, default=0)
    # Pricing-rule discounts that last some periods, by source: {"first_cycle": n, "discount": {...}}
    # (redeemed at the first period the rule gave them, like a coupon).
    promotions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class UsageRecord(Base):
    """An ingested usage event. The primary key is the event id: the idempotency key."""

    __tablename__ = "sales_usage_events"
    __table_args__ = (
        Index("ix_sales_usage_customer_time", "customer_id", "time"),
        Index("ix_sales_usage_customer_received", "customer_id", "received_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(100))
    time: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime]


class Counter(Base):
    """Gapless sequences (invoice numbers per year): incremented in the transaction that
    uses the number, so a rollback gives the number back."""

    __tablename__ = "sales_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(_BIGINT, default=0)


class Invoice(Base):
    __tablename__ = "sales_invoices"
    # One invoice per subscription and billing key ("period:2026-02-01", "final:...",
    # "change:3", "once"): racing billing runs cannot issue the same invoice twice.
    __table_args__ = (
        UniqueConstraint("subscription_id", "billing_key", name="uq_invoice_subscription_period"),
        Index("ix_sales_invoices_arrears", "subscription_id", "arrears_start"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[str | None] = mapped_column(String(32), unique=True, default=None)
    customer_id: Mapped[str] = mapped_column(ForeignKey("sales_customers.id"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("sales_subscriptions.id"), default=None)
    billing_key: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(20))  # start | cycle | change | final | once | cancel
    # draft -> finalized -> paid | void | uncollectible
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    plan_id: Mapped[str | None] = mapped_column(String(100), default=None)
    catalog_version_id: Mapped[int | None] = mapped_column(default=None)
    period_start: Mapped[date | None] = mapped_column(Date, default=None)
    period_end: Mapped[date | None] = mapped_column(Date, default=None)
    # The closed period whose in-arrears usage this invoice billed (late usage refers to it).
    arrears_start: Mapped[date | None] = mapped_column(Date, default=None)
    arrears_end: Mapped[date | None] = mapped_column(Date, default=None)
    arrears_plan_id: Mapped[str | None] = mapped_column(String(100), default=None)
    arrears_version_id: Mapped[int | None] = mapped_column(default=None)
    arrears_quantity: Mapped[Decimal | None] = mapped_column(default=None)
    subtotal: Mapped[Decimal]
    discount: Mapped[Decimal]
    tax: Mapped[Decimal]
    total: Mapped[Decimal]
    credit_applied: Mapped[Decimal] = mapped_column(default=ZERO)
    amount_due: Mapped[Decimal]
    amount_paid: Mapped[Decimal] = mapped_column(default=ZERO)
    tax_rate: Mapped[Decimal] = mapped_column(default=ZERO)
    tax_country: Mapped[str | None] = mapped_column(String(2), default=None)
    reverse_charge: Mapped[bool] = mapped_column(Boolean, default=False)
    discounts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    issued_at: Mapped[datetime | None] = mapped_column(default=None)
    paid_at: Mapped[datetime | None] = mapped_column(default=None)
    voided_at: Mapped[datetime | None] = mapped_column(default=None)


class InvoiceLine(Base):
    __tablename__ = "sales_invoice_lines"
    __table_args__ = (Index("ix_sales_lines_sub_period", "subscription_id", "period_start"),)

    # A natural key, so the ORM inserts a batch of lines with executemany (no RETURNING).
    invoice_id: Mapped[str] = mapped_column(ForeignKey("sales_invoices.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    subscription_id: Mapped[str | None] = mapped_column(String(64), default=None)
    price_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(300))
    model: Mapped[str] = mapped_column(String(40))
    timing: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(30))  # charge | minimum_commitment | proration | adjustment | fee
    quantity: Mapped[Decimal]
    amount: Mapped[Decimal]
    # Rounded once per line; the invoice's figures are the sums of its lines'.
    discount: Mapped[Decimal] = mapped_column(default=ZERO)
    tax: Mapped[Decimal] = mapped_column(default=ZERO)
    period_start: Mapped[date | None] = mapped_column(Date, default=None)
    period_end: Mapped[date | None] = mapped_column(Date, default=None)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(300), default="")


class InvoicePayment(Base):
    __tablename__ = "sales_invoice_payments"

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("sales_invoices.id"), index=True)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    event_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    reference: Mapped[str | None] = mapped_column(String(200), default=None)
    paid_at: Mapped[datetime]


class CreditNote(Base):
    __tablename__ = "sales_credit_notes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("sales_customers.id"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(String(64), default=None)
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("sales_invoices.id"), default=None)
    reason: Mapped[str] = mapped_column(String(20))  # proration | cancellation | refund
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal]
    tax: Mapped[Decimal]
    total: Mapped[Decimal]  # positive: what the customer is credited
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    # What of `total` went to the customer's balance (the rest: off open invoices, or paid back
    # by a refund). None on notes issued before it was recorded (migration 0017).
    to_balance: Mapped[Decimal | None] = mapped_column(default=None)


class PeriodLedger(Base):
    """What one document billed of one service period of a subscription, one row per piece:
    the history later documents of that period are priced against (the minimum commitment,
    amounts off, credits for unused time, late usage)."""

    __tablename__ = "sales_period_ledger"
    __table_args__ = (Index("ix_sales_ledger_sub_period", "subscription_id", "period_start"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    part: Mapped[str] = mapped_column(String(10))  # advance | arrears | interim (progressive billing)
    reason: Mapped[str] = mapped_column(String(20))  # open | close | change | cancel | late | once
    credit: Mapped[bool] = mapped_column(Boolean, default=False)
    document_id: Mapped[str] = mapped_column(String(64))
    cycle: Mapped[int] = mapped_column(Integer)
    plan_id: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[Decimal]
    # The days of the period the piece covers (None: from its start, to its end): where a
    # change or a cancellation cut the period, so a quote replays it and the minimum is
    # owed for the days each plan was held.
    charge_from: Mapped[date | None] = mapped_column(Date, default=None)
    charge_until: Mapped[date | None] = mapped_column(Date, default=None)
    billed: Mapped[dict[str, Any]] = mapped_column(JSON)  # engine.pricing.Billed.as_dict()
    discounts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]


class BurnTotal(Base):
    """A customer's usage of a metric that burns their token wallet, all of it so far
    (docs/credits.md, Token wallets): ingestion adds each new event's quantity in the
    transaction that stores it, so the burn and the access view read one row instead of
    the history. `counted` is False until the burn counted the events stored before the
    customer held a wallet (ingestion adds only for holders)."""

    __tablename__ = "sales_burn_totals"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    metric: Mapped[str] = mapped_column(String(100), primary_key=True)
    quantity: Mapped[Decimal]
    counted: Mapped[bool] = mapped_column(Boolean, default=False)
