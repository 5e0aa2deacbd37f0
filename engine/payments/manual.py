"""Payments recorded by hand: money received outside any provider (cash, cheque, a transfer
seen on the bank's website, or matched from a statement).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.payments.models import Payment, Receivable
from engine.payments.outcomes import _receive
from engine.payments.references import normalise_reference
from engine.payments.service import ZERO, PaymentError, PaymentService, check_amount
from engine.store import new_event_id

# --- manual payments -------------------------------------------------------------------------


def _check_invoice(session: Session, invoice_id: str, customer_id: str, currency: str) -> None:
    """The invoice a payment is recorded for is the customer's, in the payment's currency."""
    rec = session.get(Receivable, invoice_id)
    if rec is None:
        raise PaymentError(f"unknown invoice {invoice_id!r}")
    if rec.customer_id != customer_id:
        raise PaymentError(f"invoice {invoice_id} belongs to another customer")
    if rec.currency != currency:
        raise PaymentError(f"invoice {invoice_id} is in {rec.currency}, not {currency}")


def record_manual_payment(
    session: Session,
    *,
    customer_id: str,
    amount: Decimal,
    currency: str,
    invoice_id: str | None = None,
    method_type: str = "cash",
    reference: str | None = None,
    received_at: datetime | None = None,
    recorded_by: str | None = None,
    idempotency_key: str | None = None,
    provider: str = "manual",
    provider_ref: str | None = None,
    cash_account: str | None = None,
    service: PaymentService,
) -> Payment:
    """An admin records money received outside any provider (cash, cheque, a transfer seen on
    the bank's website). Applied to the invoice; anything above what it owes becomes credit.
    `cash_account`: the journal's account the money came in on (default `cash:<provider>`)."""
    svc = service
    amount = check_amount(amount, currency)
    if idempotency_key:
        existing = session.scalar(select(Payment).where(Payment.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    if invoice_id is not None:
        _check_invoice(session, invoice_id, customer_id, currency)
    now = svc.now()
    payment = Payment(
        id=new_event_id("pay"),
        idempotency_key=idempotency_key or new_event_id("manual"),
        invoice_id=invoice_id,
        customer_id=customer_id,
        attempt=0,
        provider=provider,
        method_type=method_type,
        amount=amount,
        currency=currency,
        status="succeeded",
        provider_ref=provider_ref,
        payment_reference=normalise_reference(reference) if reference else None,
        refunded_amount=ZERO,
        captured_at=received_at or now,
        recorded_by=recorded_by,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    try:
        session.flush()
    except IntegrityError as exc:
        raise PaymentError(f"payment already recorded: {exc.orig}") from exc
    _receive(session, svc, payment, cash_account)
    return payment
