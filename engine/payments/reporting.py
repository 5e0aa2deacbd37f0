"""Reads for the console's overview: payment attempts, refunds and open receivables as small
rows of plain columns; the figures are computed from them by `engine.console.figures`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.payments.models import Payment, Receivable, Refund
from engine.store.days import as_day, exact, utc_day


class PaymentFact(NamedTuple):
    invoice_id: str | None
    customer_id: str
    currency: str
    status: str  # pending | succeeded | failed | refunded
    amount: Decimal
    on: date  # captured (a success), else attempted
    decline_code: str | None


class RefundFact(NamedTuple):
    invoice_id: str | None
    customer_id: str
    currency: str
    amount: Decimal
    on: date


class ReceivableFact(NamedTuple):
    invoice_id: str
    customer_id: str
    currency: str
    outstanding: Decimal
    due_on: date


def payment_facts(session: Session, start: date, end: date, *, currency: str | None = None) -> list[PaymentFact]:
    """Payment attempts made in [start, end) (of one `currency` when given). A refunded
    payment was collected first: it counts as collected on its capture day, its refund on
    the refund's day."""
    stmt = select(Payment.invoice_id, Payment.customer_id, Payment.currency, Payment.status,
                  exact(session, Payment.amount),
                  utc_day(session, func.coalesce(Payment.captured_at, Payment.created_at)), Payment.decline_code
                  ).where(Payment.created_at >= _at(start), Payment.created_at < _at(end))
    if currency is not None:
        stmt = stmt.where(Payment.currency == currency)
    return [PaymentFact(r[0], r[1], r[2], r[3], r[4], as_day(r[5]), r[6]) for r in session.connection().execute(stmt).all()]


def refund_facts(session: Session, start: date, end: date, *, currency: str | None = None) -> list[RefundFact]:
    """Refunds that succeeded, made in [start, end) (of one `currency` when given)."""
    stmt = (select(Payment.invoice_id, Refund.customer_id, Refund.currency, Refund.amount,
                   utc_day(session, Refund.created_at))
            .join(Payment, Payment.id == Refund.payment_id)
            .where(Refund.status == "succeeded", Refund.created_at >= _at(start), Refund.created_at < _at(end)))
    if currency is not None:
        stmt = stmt.where(Refund.currency == currency)
    return [RefundFact(r[0], r[1], r[2], r[3], as_day(r[4])) for r in session.connection().execute(stmt).all()]


def open_receivable_facts(session: Session, *, currency: str | None = None) -> list[ReceivableFact]:
    """Every open receivable (of one `currency` when given) with what is still owed and when
    it fell due (its creation when no due date was set: an automatic collection is due at once)."""
    stmt = select(Receivable.invoice_id, Receivable.customer_id, Receivable.currency, Receivable.amount_due,
                  Receivable.amount_paid, Receivable.credit_applied,
                  utc_day(session, func.coalesce(Receivable.due_at, Receivable.created_at))
                  ).where(Receivable.status == "open")
    if currency is not None:
        stmt = stmt.where(Receivable.currency == currency)
    return [ReceivableFact(r[0], r[1], r[2], r[3] - r[4] - r[5], as_day(r[6]))
            for r in session.connection().execute(stmt).all()]


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)
