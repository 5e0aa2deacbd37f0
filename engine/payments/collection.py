"""Collection: charge what invoices owe, never twice, and record what came in.

Every function takes the caller's SQLAlchemy session and writes its events with
`engine.store.add_event` in that same transaction, so a state change and the events it
causes commit together or not at all.

Never twice:
- An attempt's idempotency key is `"{invoice_id}:{attempt}"`. Before charging a new key we
  ask the provider whether it already holds a payment for it: a process killed between the
  provider's answer and our commit left no row here, but the provider remembers, and the
  redelivered invoice.finalized (or the retry) adopts that payment instead of charging again.
- A timeout leaves the attempt `pending` with `needs_lookup`; `repair_pending` (run at
  start-up and periodically) looks it up, and re-sends the charge with the same key only when
  the provider has never seen it.
- A new attempt for an invoice is refused while an earlier one is still unresolved.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.payments.method_store import default_payment_method
from engine.payments.models import Payment, PaymentMethod, Receivable, Refund
from engine.payments.outcomes import _credit_paid_props, _emit_invoice_failed, _fail, apply_charge_outcome
from engine.payments.provider import ChargeRequest, ProviderError, ProviderRejected
from engine.payments.reads import ONE_BY_ONE, Reads
from engine.payments.receivables import _apply_credit, open_receivable
from engine.payments.refunds import _resolve_refund
from engine.payments.service import (
    OFFLINE_PROVIDERS,
    ZERO,
    CollectableInvoice,
    CollectionResult,
    PaymentError,
    PaymentNotFound,
    PaymentService,
    _emit,
    _receivable,
    attempt_key,
)
from engine.store import new_event_id


def _charge_request(session: Session, payment: Payment) -> ChargeRequest:
    method = session.get(PaymentMethod, payment.method_id) if payment.method_id else None
    return ChargeRequest(
        idempotency_key=payment.idempotency_key,
        amount=payment.amount,
        currency=payment.currency,
        customer_id=payment.customer_id,
        method_type=payment.method_type,
        token=method.token if method else None,
        payment_reference=payment.payment_reference,
        description=f"invoice {payment.invoice_id}" if payment.invoice_id else "",
        metadata={"invoice_id": payment.invoice_id or "", "attempt": str(payment.attempt)},
    )


def _resolve_pending(session: Session, svc: PaymentService, payment: Payment) -> str:
    """Ask the provider what became of a pending attempt; re-send the charge (same key) only
    when the provider never saw it."""
    adapter = svc.adapter(payment.provider)
    try:
        outcome = adapter.lookup(payment.idempotency_key)
        if outcome is None:
            outcome = adapter.charge(_charge_request(session, payment))
    except ProviderError:
        payment.needs_lookup = True
        payment.updated_at = svc.now()
        return payment.status
    except ProviderRejected as exc:
        _fail(session, svc, payment, f"rejected:{exc.code}", False)
        return payment.status
    return apply_charge_outcome(session, svc, payment, outcome)


def _result(payment: Payment, rec: Receivable | None) -> CollectionResult:
    remaining, reference = (max(rec.remaining, ZERO), rec.payment_reference) if rec else (ZERO, None)
    if payment.status == "succeeded":
        status = "paid" if rec is None or rec.status == "paid" else "partially_paid"
    else:
        status = payment.status
    return CollectionResult(
        status=status,
        invoice_id=payment.invoice_id or "",
        payment_id=payment.id,
        decline_code=payment.decline_code,
        retryable=payment.retryable,
        remaining=remaining,
        payment_reference=reference,
    )


def collect_invoice(
    session: Session,
    invoice: CollectableInvoice,
    *,
    service: PaymentService,
    collection_method: str = "automatic",
    reads: Reads = ONE_BY_ONE,
) -> CollectionResult:
    """Collect `invoice` (attempt `invoice.attempt`) from the customer's default method:
    customer credit first, then the provider. Idempotent per (invoice, attempt). `reads`:
    what a batch read ahead (engine/payments/reads.py)."""
    svc = service
    if invoice.attempt < 1:
        raise PaymentError("attempt numbers start at 1")
    open_receivable(session, invoice, collection_method=collection_method, service=svc, reads=reads)
    rec = reads.locked_receivable(session, invoice.invoice_id)
    assert rec is not None
    key = attempt_key(invoice.invoice_id, invoice.attempt)
    existing = reads.payment(session, key)
    if existing is not None:
        if existing.status == "pending" and existing.provider not in OFFLINE_PROVIDERS:
            _resolve_pending(session, svc, existing)
        return _result(existing, rec)
    refused = _no_new_attempt(session, svc, rec, reads)
    if refused is not None:
        return refused
    rec.last_attempt = max(rec.last_attempt, invoice.attempt)

    used = _apply_credit(session, svc, rec, reads)
    if rec.status == "paid":
        _emit(session, svc, "payment.succeeded", rec.customer_id, _credit_paid_props(rec, used))
        return CollectionResult("paid", rec.invoice_id, payment_reference=rec.payment_reference)

    return _collect_remaining(session, svc, rec, key, invoice.attempt, reads)


def _collect_remaining(session: Session, svc: PaymentService, rec: Receivable, key: str,
                       attempt: int, reads: Reads) -> CollectionResult:
    """What credit left unpaid: awaited as a bank transfer, charged to the default method, or
    failed for want of one."""
    method = reads.default_method(session, rec.customer_id)
    if rec.collection_method == "bank_transfer" or (
        method is not None and method.provider == "bank"
    ):
        rec.collection_method = "bank_transfer"
        return CollectionResult("awaiting_transfer", rec.invoice_id, remaining=rec.remaining,
                                payment_reference=rec.payment_reference)
    if method is None or method.method_type == "manual":
        _emit_invoice_failed(session, svc, rec.invoice_id, rec.customer_id, attempt,
                             "no_payment_method", False, None, reads)
        return CollectionResult("no_payment_method", rec.invoice_id, decline_code="no_payment_method",
                                retryable=False, remaining=rec.remaining,
                                payment_reference=rec.payment_reference)
    return _charge(session, svc, rec, method, key, attempt, reads)


def _no_new_attempt(session: Session, svc: PaymentService, rec: Receivable,
                    reads: Reads = ONE_BY_ONE) -> CollectionResult | None:
    """Why no new attempt is made for `rec` (paid, closed, or an earlier attempt whose
    outcome is still unknown), or None when one may be."""
    if rec.status == "paid":
        return CollectionResult("already_paid", rec.invoice_id, payment_reference=rec.payment_reference)
    if rec.status != "open":  # voided or written off: nothing more is collected
        return CollectionResult(rec.status, rec.invoice_id, payment_reference=rec.payment_reference)
    # An earlier attempt whose outcome is unknown could still have taken the money.
    for earlier in reads.pending(session, rec.invoice_id):
        if earlier.provider in OFFLINE_PROVIDERS:
            continue
        if _resolve_pending(session, svc, earlier) == "pending":
            return CollectionResult("blocked", rec.invoice_id, payment_id=earlier.id,
                                    remaining=rec.remaining, payment_reference=rec.payment_reference)
    if rec.status == "paid":
        return CollectionResult("already_paid", rec.invoice_id, payment_reference=rec.payment_reference)
    return None


def _charge(session: Session, svc: PaymentService, rec: Receivable, method: PaymentMethod, key: str,
            attempt: int, reads: Reads = ONE_BY_ONE) -> CollectionResult:
    """Record attempt `attempt` as pending, then ask the provider (looking first, in case a
    lost run of this very attempt was answered) and apply what it says."""
    adapter = svc.adapter(method.provider)
    now = svc.now()
    payment = Payment(
        id=new_event_id("pay"),
        idempotency_key=key,
        invoice_id=rec.invoice_id,
        customer_id=rec.customer_id,
        attempt=attempt,
        provider=method.provider,
        method_type=method.method_type,
        method_id=method.id,
        amount=rec.remaining,
        currency=rec.currency,
        status="pending",
        payment_reference=rec.payment_reference,
        refunded_amount=ZERO,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    reads.write_now(session)
    try:
        # Look first: a run of this very attempt may have been answered and then lost.
        outcome = adapter.lookup(key)
        if outcome is None:
            outcome = adapter.charge(_charge_request(session, payment))
    except ProviderError:
        payment.needs_lookup = True
        return _result(payment, rec)
    except ProviderRejected as exc:
        _fail(session, svc, payment, f"rejected:{exc.code}", False, reads)
        return _result(payment, rec)
    apply_charge_outcome(session, svc, payment, outcome, reads)
    return _result(payment, rec)


def retry_invoice_payment(session: Session, invoice_id: str, *,
                          service: PaymentService) -> CollectionResult:
    """The next attempt for an open invoice (what `retry_payment` in dunning rules asks)."""
    rec = _receivable(session, invoice_id)
    if rec is None:
        raise PaymentError(f"unknown invoice {invoice_id!r}")
    return collect_invoice(
        session,
        CollectableInvoice(rec.invoice_id, rec.customer_id, rec.amount_due, rec.currency,
                           attempt=rec.last_attempt + 1),
        service=service,
    )


def pay_invoice_now(session: Session, invoice_id: str, *, service: PaymentService) -> CollectionResult:
    """The customer asks to pay an open invoice now (the customer page): the next attempt on
    their default method, through the provider. An invoice that waits for a bank transfer is
    charged when the customer's default method is now one a provider charges (they added a
    card); a transfer that still arrives later is an overpayment, credited to their balance."""
    rec = _receivable(session, invoice_id)
    if rec is None:
        raise PaymentNotFound(f"unknown invoice {invoice_id!r}", "invoice_id")
    method = default_payment_method(session, rec.customer_id)
    if rec.status == "open" and rec.collection_method == "bank_transfer" and method is not None \
            and method.provider not in OFFLINE_PROVIDERS and method.method_type not in ("bank_transfer", "manual"):
        rec.collection_method = "automatic"
    return retry_invoice_payment(session, invoice_id, service=service)


def collect_due_invoices(session: Session, *, service: PaymentService,
                         limit: int = 500) -> list[CollectionResult]:
    """First attempts for automatic invoices that have fallen due (the scheduler calls this)."""
    svc = service
    due = session.scalars(
        select(Receivable)
        .where(Receivable.status == "open", Receivable.collection_method == "automatic",
               Receivable.last_attempt == 0, Receivable.due_at <= svc.now())
        .order_by(Receivable.due_at)
        .limit(limit)
    ).all()
    return [retry_invoice_payment(session, rec.invoice_id, service=svc) for rec in due]


def repair_pending(session: Session, *, service: PaymentService,
                   older_than: timedelta = timedelta(0)) -> dict[str, str]:
    """Resolve attempts and refunds whose outcome we do not know (timeouts, crashes, async
    methods without their webhook) by looking them up at the provider. Returns id -> status."""
    svc = service
    cutoff = svc.now() - older_than
    out: dict[str, str] = {}
    for payment in session.scalars(
        select(Payment).where(Payment.status == "pending", Payment.created_at <= cutoff,
                              Payment.provider.in_(list(svc.adapters)))
    ).all():
        out[payment.id] = _resolve_pending(session, svc, payment)
    for refund in session.scalars(
        select(Refund).where(Refund.status == "pending", Refund.created_at <= cutoff,
                             Refund.provider.in_(list(svc.adapters)))
    ).all():
        out[refund.id] = _resolve_refund(session, svc, refund)
    return out
