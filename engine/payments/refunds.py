"""Refunds: all or part of a succeeded payment, never above what is refundable; their
outcomes are journalled and published as payment.refunded.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.payments import journal
from engine.payments.books.schedules import CreditSplit, beyond, invoice_gross, split_refund
from engine.payments.journal import Posting
from engine.payments.models import Payment, Refund
from engine.payments.provider import PaymentState, ProviderError, ProviderRejected, RefundOutcome, RefundRequest
from engine.payments.receivables import add_credit
from engine.payments.service import (
    OFFLINE_PROVIDERS,
    ZERO,
    PaymentError,
    PaymentService,
    RefundRejected,
    _emit,
    _money,
    check_amount,
)
from engine.store import new_event_id

# --- refunds ---------------------------------------------------------------------------------


def refund_payment(
    session: Session,
    payment_id: str,
    amount: Decimal | None = None,
    *,
    reason: str = "",
    idempotency_key: str | None = None,
    service: PaymentService,
) -> Refund:
    """Refund all or part of a succeeded payment. Above the refundable amount (paid minus
    refunded minus refunds in flight) it is rejected and nothing is recorded."""
    svc = service
    if idempotency_key:
        existing = session.scalar(select(Refund).where(Refund.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    payment = session.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise RefundRejected(f"unknown payment {payment_id!r}")
    if payment.status not in ("succeeded", "refunded"):
        raise RefundRejected(f"payment {payment_id} is {payment.status}; only succeeded payments are refunded")
    amount = _refund_amount(session, payment, amount)
    count = session.execute(select(func.count()).select_from(Refund).where(Refund.payment_id == payment.id)).scalar_one()
    key = idempotency_key or f"{payment.idempotency_key}:refund:{count + 1}"
    now = svc.now()
    refund = Refund(
        id=new_event_id("re"),
        idempotency_key=key,
        payment_id=payment.id,
        customer_id=payment.customer_id,
        provider=payment.provider,
        amount=amount,
        currency=payment.currency,
        status="pending",
        reason=reason[:200] or None,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    session.flush()
    if payment.provider in OFFLINE_PROVIDERS:
        _apply_refund_outcome(session, svc, refund, PaymentState.SUCCEEDED, None)
    else:
        _send_refund(session, svc, payment, refund, reason)
    return refund


def _refund_amount(session: Session, payment: Payment, amount: Decimal | None) -> Decimal:
    """The amount to refund (by default all that is refundable), checked against what is
    refundable: paid minus refunded minus the refunds in flight."""
    pending_sum = sum((r.amount for r in session.scalars(
        select(Refund).where(Refund.payment_id == payment.id, Refund.status == "pending"))), ZERO)
    refundable = payment.amount - payment.refunded_amount - pending_sum
    try:
        amount = check_amount(refundable if amount is None else amount, payment.currency, "refund amount")
    except PaymentError as exc:
        raise RefundRejected(str(exc)) from None
    if amount > refundable:
        raise RefundRejected(
            f"refund of {amount} {payment.currency} exceeds the refundable {refundable} "
            f"{payment.currency} of payment {payment.id} (paid {payment.amount}, "
            f"refunded {payment.refunded_amount}, in flight {pending_sum})"
        )
    return amount


def _send_refund(session: Session, svc: PaymentService, payment: Payment, refund: Refund, reason: str) -> None:
    """Ask the payment's provider to refund; a refusal removes the refund, an unanswered
    request leaves it pending for a lookup."""
    adapter = svc.adapter(payment.provider)
    if payment.provider_ref is None:
        raise RefundRejected(f"payment {payment.id} has no provider reference")
    try:
        outcome = adapter.refund(
            RefundRequest(refund.idempotency_key, payment.provider_ref, refund.amount, payment.currency, reason)
        )
    except ProviderError:
        refund.needs_lookup = True
        return
    except ProviderRejected as exc:
        session.delete(refund)
        session.flush()
        raise RefundRejected(f"the provider refused the refund: {exc.code}: {exc.message}") from None
    _apply_refund_outcome(session, svc, refund, outcome.state, outcome.provider_ref)


def _resolve_refund(session: Session, svc: PaymentService, refund: Refund) -> str:
    adapter = svc.adapter(refund.provider)
    payment = session.get_one(Payment, refund.payment_id)
    try:
        outcome = adapter.lookup_refund(refund.idempotency_key)
        if outcome is None and payment.provider_ref:
            outcome = adapter.refund(RefundRequest(refund.idempotency_key, payment.provider_ref,
                                                   refund.amount, refund.currency, refund.reason or ""))
    except ProviderError:
        refund.needs_lookup = True
        return refund.status
    except ProviderRejected:
        refund.status = "failed"
        refund.updated_at = svc.now()
        return refund.status
    if outcome is None:
        return refund.status
    _apply_refund_outcome(session, svc, refund, outcome.state, outcome.provider_ref)
    return refund.status


def apply_refund_outcome(session: Session, svc: PaymentService, refund: Refund, outcome: RefundOutcome) -> str:
    _apply_refund_outcome(session, svc, refund, outcome.state, outcome.provider_ref)
    return refund.status


def _refund_split(session: Session, payment: Payment, refund: Refund) -> CreditSplit:
    """A refund's net and tax (docs/books.md): the tax it refunds leaves taxes payable, in the
    invoice's proportion on what its payments have refunded so far (this refund included:
    `refunded_amount` is already raised), so a full refund reverses exactly the invoice's tax."""
    if payment.invoice_id is None:
        return CreditSplit(refund.amount, ZERO, journal.TAX_PAYABLE)
    after = sum(session.scalars(select(Payment.refunded_amount).where(Payment.invoice_id == payment.invoice_id)), ZERO)
    return split_refund(session, payment.invoice_id, after - refund.amount, refund.amount, refund.currency)


def _repaid_credit(session: Session, payment: Payment, refund: Refund, now: datetime) -> Decimal:
    """The part of a refund beyond its invoice's total (docs/books.md): an overpayment's credit
    paid back, not revenue given back. It leaves the customer's credit balance (a `refunded`
    entry of the credit ledger) and the journal's `customer_credit`, not `refunds`; the refund
    door checked the customer holds it (adjustments.check_refund)."""
    if payment.invoice_id is None:
        return ZERO
    gross = invoice_gross(session, payment.invoice_id)
    if gross <= 0:
        return ZERO
    after = sum(session.scalars(select(Payment.refunded_amount).where(Payment.invoice_id == payment.invoice_id)), ZERO)
    repaid = beyond(after - refund.amount, refund.amount, gross)
    if repaid > 0:
        add_credit(session, payment.customer_id, refund.currency, -repaid, now, payment.id, payment.invoice_id,
                   reason="refunded")
    return repaid


def _apply_refund_outcome(session: Session, svc: PaymentService, refund: Refund,
                          state: PaymentState, provider_ref: str | None) -> None:
    if refund.status != "pending":
        return
    now = svc.now()
    refund.provider_ref = provider_ref or refund.provider_ref
    refund.updated_at = now
    if state is PaymentState.PENDING:
        refund.needs_lookup = False
        return
    if state is PaymentState.FAILED:
        refund.status = "failed"
        return
    refund.status = "succeeded"
    refund.needs_lookup = False
    payment = session.get_one(Payment, refund.payment_id, with_for_update=True)
    payment.refunded_amount += refund.amount
    if payment.refunded_amount >= payment.amount:
        payment.status = "refunded"
    payment.updated_at = now
    split = _refund_split(session, payment, refund)
    repaid = _repaid_credit(session, payment, refund, now)
    journal.post_entry(
        session, f"refund:{refund.id}", now, refund.currency,
        [Posting(journal.REFUNDS, debit=split.net - repaid), Posting(journal.CUSTOMER_CREDIT, debit=repaid),
         Posting(split.tax_account, debit=split.tax),
         Posting(journal.received_on(session, payment.id, payment.provider), credit=refund.amount)],
        f"refund of payment {payment.id}", payment.invoice_id or payment.id,
    )
    _emit(session, svc, "payment.refunded", payment.customer_id, {
        "refund_id": refund.id,
        "payment_id": payment.id,
        "invoice_id": payment.invoice_id,
        "amount": _money(refund.amount, refund.currency),
        "currency": refund.currency,
        "total_refunded": _money(payment.refunded_amount, payment.currency),
        "fully_refunded": payment.status == "refunded",
        "reason": refund.reason,
    })
