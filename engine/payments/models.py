"""Tables owned by payments. No other subsystem writes them; sales learns about payments only
through events (payment.succeeded, payment.failed, payment.refunded, invoice.payment_failed).

Money columns are Decimal (DecimalString); every time is tz-aware UTC.
"""

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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.store import Base

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class PaymentMethod(Base):
    """A customer's stored way to pay. `token` is the provider's handle (never a raw PAN in a
    real deployment; the sandbox accepts its test card numbers as tokens)."""

    __tablename__ = "pay_methods"
    __table_args__ = (Index("ix_pay_methods_customer", "customer_id", "is_default"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    method_type: Mapped[str] = mapped_column(String(32))  # card|paypal|twint|bank_transfer|manual
    token: Mapped[str | None] = mapped_column(String(200), default=None)
    is_default: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    # A card's last four digits as the provider said when it checked the method (a Stripe
    # PaymentMethod id says nothing of them); None: not said (the sandbox's token is the number).
    last4: Mapped[str | None] = mapped_column(String(4), default=None)


class Receivable(Base):
    """What payments knows of an invoice: how much it must collect and what it has collected.
    Opened from the collectable-invoice value sales hands over (invoice.finalized)."""

    __tablename__ = "pay_receivables"

    invoice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount_due: Mapped[Decimal]  # the invoice total payments must collect
    amount_paid: Mapped[Decimal]  # by payments (cash, card, transfer)
    credit_applied: Mapped[Decimal]  # from the customer's credit balance
    # ISO 11649 structured creditor reference ("RF.."), for bank transfers.
    payment_reference: Mapped[str] = mapped_column(String(40), unique=True)
    collection_method: Mapped[str] = mapped_column(String(32))  # automatic | bank_transfer
    status: Mapped[str] = mapped_column(String(16))  # open | paid
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    last_attempt: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]

    @property
    def remaining(self) -> Decimal:
        return self.amount_due - self.amount_paid - self.credit_applied


class Payment(Base):
    """One attempt to move money to us, and, once it succeeded, the ledger record of it.

    `idempotency_key` is derived from invoice and attempt ("inv_1:1"), so a retried or
    repaired attempt can never charge twice: the provider replays or reports the first one.
    """

    __tablename__ = "pay_payments"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref", name="uq_pay_payments_provider_ref"),
        Index("ix_pay_payments_invoice", "invoice_id", "attempt"),
        Index("ix_pay_payments_status", "status", "provider"),
        Index("ix_pay_payments_captured", "provider", "captured_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    invoice_id: Mapped[str | None] = mapped_column(String(64), default=None)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    provider: Mapped[str] = mapped_column(String(32))  # sandbox | bank | manual | ...
    method_type: Mapped[str] = mapped_column(String(32))
    method_id: Mapped[str | None] = mapped_column(String(64), default=None)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # pending|succeeded|failed|refunded
    provider_ref: Mapped[str | None] = mapped_column(String(100), default=None)
    payment_reference: Mapped[str | None] = mapped_column(String(100), default=None, index=True)
    decline_code: Mapped[str | None] = mapped_column(String(64), default=None)
    retryable: Mapped[bool | None] = mapped_column(Boolean, default=None)
    # A timeout or transport error left the outcome unknown: look it up before anything else.
    needs_lookup: Mapped[bool] = mapped_column(Boolean, default=False)
    refunded_amount: Mapped[Decimal]
    captured_at: Mapped[datetime | None] = mapped_column(default=None)
    recorded_by: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Refund(Base):
    __tablename__ = "pay_refunds"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref", name="uq_pay_refunds_provider_ref"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("pay_payments.id"), index=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # pending|succeeded|failed
    provider_ref: Mapped[str | None] = mapped_column(String(100), default=None)
    reason: Mapped[str | None] = mapped_column(String(200), default=None)
    needs_lookup: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CreditBalance(Base):
    """The current credit per customer and currency; its row is locked while credit is
    applied, so two invoices can never spend the same credit."""

    __tablename__ = "pay_credit_balances"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    balance: Mapped[Decimal]


class CreditEntry(Base):
    """The customer credit ledger: + overpayment, - applied to an invoice. Balance = sum."""

    __tablename__ = "pay_credit_ledger"
    __table_args__ = (Index("ix_pay_credit_customer", "customer_id", "currency"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]
    reason: Mapped[str] = mapped_column(String(32))  # overpayment | applied | adjustment | returned | refunded
    payment_id: Mapped[str | None] = mapped_column(String(64), default=None)
    invoice_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]


class WebhookReceipt(Base):
    """Every provider webhook event id applied once: a redelivery finds its row and stops."""

    __tablename__ = "pay_webhook_receipts"
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_pay_webhook_event"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]


class SettlementImport(Base):
    """One imported settlement report or bank statement. The file's hash is unique: importing
    the same file again changes nothing."""

    __tablename__ = "pay_settlement_imports"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # settlement_csv | camt053
    source: Mapped[str] = mapped_column(String(64))  # provider name or bank account
    statement_id: Mapped[str] = mapped_column(String(140), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str | None] = mapped_column(String(400), default=None)
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    line_count: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    imported_at: Mapped[datetime]


class ReconciliationResult(Base):
    """One outcome of a reconciliation: a file line (matched, missing_in_ledger,
    amount_mismatch, currency_mismatch) or a ledger record the file lacks
    (missing_at_provider, line_no 0)."""

    __tablename__ = "pay_reconciliation_results"
    __table_args__ = (
        Index("ix_pay_recon_import", "import_id", "status"),
        Index("ix_pay_recon_payment", "payment_id"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    # No foreign key: results are written with their import in one transaction, and a
    # per-row referential check costs a third of a 100,000-line import.
    import_id: Mapped[str] = mapped_column(String(64))
    line_no: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(16))  # charge | refund | credit
    provider_ref: Mapped[str | None] = mapped_column(String(100), default=None)
    payment_reference: Mapped[str | None] = mapped_column(String(100), default=None)
    payment_id: Mapped[str | None] = mapped_column(String(64), default=None)
    expected_amount: Mapped[Decimal | None] = mapped_column(default=None)
    actual_amount: Mapped[Decimal | None] = mapped_column(default=None)
    expected_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    actual_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    fee: Mapped[Decimal | None] = mapped_column(default=None)
    payout_id: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[str | None] = mapped_column(String(300), default=None)


class JournalLine(Base):
    """Double-entry journal: every entry's debits equal its credits (checked when posted)."""

    __tablename__ = "pay_journal"
    __table_args__ = (
        UniqueConstraint("entry_id", "line_no", name="uq_pay_journal_line"),
        Index("ix_pay_journal_date", "entry_date"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(String(120))
    line_no: Mapped[int] = mapped_column(Integer)
    entry_date: Mapped[datetime]
    account: Mapped[str] = mapped_column(String(80))
    debit: Mapped[Decimal]
    credit: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(120), default=None)


class InvoiceReference(Base):
    """What a bank transfer may name an invoice by, besides its RF reference: its number (in
    free text) and the Swiss QR reference built from that number."""

    __tablename__ = "pay_invoice_references"

    reference: Mapped[str] = mapped_column(String(40), primary_key=True)  # kind:normalised value
    invoice_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # number | qrr


class BankLine(Base):
    """One transaction line of a bank file (a TxDtls of a batch, or an entry), kept so that what
    could not be matched automatically can be finished by a person. `account` + `identity` is
    unique: the same entry in another file (a camt.054, then the day's camt.053) is found again,
    never applied twice."""

    __tablename__ = "pay_bank_lines"
    __table_args__ = (
        UniqueConstraint("account", "identity", name="uq_pay_bank_lines_identity"),
        Index("ix_pay_bank_lines_status", "status", "currency"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    import_id: Mapped[str] = mapped_column(String(64), index=True)
    account: Mapped[str] = mapped_column(String(64))
    identity: Mapped[str] = mapped_column(String(100))
    position: Mapped[str] = mapped_column(String(80))  # Stmt[1]/Ntry[2]/TxDtls[3]
    kind: Mapped[str] = mapped_column(String(8))  # credit | debit
    amount: Mapped[Decimal]  # signed, in the account's currency
    currency: Mapped[str] = mapped_column(String(3))
    booked_on: Mapped[datetime | None] = mapped_column(default=None)  # the day (00:00 UTC)
    reference: Mapped[str | None] = mapped_column(String(40), default=None)
    ref_kind: Mapped[str | None] = mapped_column(String(8), default=None)
    text: Mapped[str | None] = mapped_column(String(300), default=None)
    debtor: Mapped[str | None] = mapped_column(String(140), default=None)
    # How the bank described it: reversal, returned (reason code), charges, currency exchange.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # matched (automatically) | open (a person must decide) | resolved (a person decided) |
    # pending (not booked yet) | skipped (a debit of ours: refunds, fees)
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(24))  # the reconciliation outcome, e.g. missing_in_ledger
    detail: Mapped[str | None] = mapped_column(String(300), default=None)
    payment_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ReconciliationDecision(Base):
    """A person's decision on a bank line: confirm (to one invoice), split (over several), or
    dismiss (nothing to apply), with who decided and why."""

    __tablename__ = "pay_reconciliation_decisions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))  # confirm | split | dismiss
    allocations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # invoice_id, amount, payment_id
    actor: Mapped[str] = mapped_column(String(120))  # api_key:<id> | cli:<user>
    reason: Mapped[str] = mapped_column(String(500))
    decided_at: Mapped[datetime]


class RevenueScheduleRow(Base):
    """What one invoice line (or a credit note on it) earns in one month: the revenue
    recognition schedule (engine/payments/books). A line's rows add up to its net amount."""

    __tablename__ = "pay_revenue_schedule"
    __table_args__ = (
        UniqueConstraint("source_id", "line_no", "month", name="uq_pay_revenue_schedule_row"),
        Index("ix_pay_revenue_schedule_month", "currency", "month"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(120))  # inv:<invoice id> | cn:<credit note id>
    invoice_id: Mapped[str] = mapped_column(String(64), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[str] = mapped_column(String(64))
    plan: Mapped[str] = mapped_column(String(100))
    price_type: Mapped[str] = mapped_column(String(16))  # subscription | usage | one_time
    currency: Mapped[str] = mapped_column(String(3))
    billed_on: Mapped[date] = mapped_column(Date)  # the day the invoice (credit note) was issued
    month: Mapped[date] = mapped_column(Date)  # the first day of the month it is earned in
    amount: Mapped[Decimal]
