"""Receiving money and recording failures: apply what a provider says about a charge to the
payment, its receivable, credit and the journal, and publish payment.succeeded,
payment.failed and invoice.payment_failed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine.payments import journal
from engine.payments.journal import Posting
from engine.payments.models import Payment, Receivable
from engine.payments.provider import ChargeOutcome, PaymentState
from engine.payments.reads import ONE_BY_ONE, Reads
from engine.payments.receivables import add_credit
from engine.payments.service import ZERO, PaymentService, _emit, _money

# --- receiving money -------------------------------------------------------------------------


def _receive(session: Session, svc: PaymentService, payment: Payment, cash: str | None = None,
             reads: Reads = ONE_BY_ONE) -> None:
    """A payment succeeded: apply it to its invoice, the rest to customer credit; journal it
    (on `cash`, by default its provider's cash account); publish payment.succeeded."""
    now = svc.now()
    amount = payment.amount
    rec = reads.locked_receivable(session, payment.invoice_id) if payment.invoice_id else None
    to_invoice = ZERO
    if rec is not None and rec.currency == payment.currency:
        to_invoice = min(amount, max(rec.remaining, ZERO))
        rec.amount_paid += to_invoice
        if rec.remaining <= 0:
            rec.status = "paid"
    over = amount - to_invoice
    if over > 0:
        add_credit(session, payment.customer_id, payment.currency, over, now, payment.id, payment.invoice_id)
    journal.post_entry(
        session, f"pay:{payment.id}", payment.captured_at or now, payment.currency,
        [
            Posting(cash or journal.cash_account(payment.provider), debit=amount),
            Posting(journal.RECEIVABLES, credit=to_invoice),
            Posting(journal.CUSTOMER_CREDIT, credit=over),
        ],
        f"payment {payment.method_type} via {payment.provider}", payment.invoice_id or payment.id,
    )
    _emit(session, svc, "payment.succeeded", payment.customer_id, _succeeded_props(payment, rec, to_invoice, over))


def _succeeded_props(payment: Payment, rec: Receivable | None, applied: Decimal, credited: Decimal) -> dict[str, Any]:
    """payment.succeeded of a payment: what it paid of its invoice (if any) and what went to credit."""
    currency = payment.currency
    return {
        "payment_id": payment.id,
        "invoice_id": rec.invoice_id if rec else payment.invoice_id,
        "amount": _money(payment.amount, currency),
        "currency": currency,
        "method": payment.method_type,
        "provider": payment.provider,
        "provider_reference": payment.provider_ref,
        "attempt": payment.attempt,
        "applied_to_invoice": _money(applied, currency),
        "credited": _money(credited, currency),
        **_invoice_facts(rec, currency),
    }


def _credit_paid_props(rec: Receivable, used: Decimal) -> dict[str, Any]:
    """payment.succeeded of an invoice the customer's credit paid (no payment)."""
    currency = rec.currency
    return {
        "payment_id": None,
        "invoice_id": rec.invoice_id,
        "amount": _money(used, currency),
        "currency": currency,
        "method": "credit",
        "provider": None,
        "provider_reference": None,
        "attempt": None,
        "applied_to_invoice": _money(used, currency),
        "credited": _money(ZERO, currency),
        **_invoice_facts(rec, currency),
    }


def _invoice_facts(rec: Receivable | None, currency: str) -> dict[str, Any]:
    if rec is None:
        return {}
    return {
        "invoice_amount_paid": _money(rec.amount_paid + rec.credit_applied, currency),
        "invoice_remaining": _money(max(rec.remaining, ZERO), currency),
        "invoice_paid": rec.status == "paid",
    }


def _fail(session: Session, svc: PaymentService, payment: Payment, decline_code: str, retryable: bool,
          reads: Reads = ONE_BY_ONE) -> None:
    payment.status = "failed"
    payment.decline_code = decline_code
    payment.retryable = retryable
    payment.needs_lookup = False
    payment.updated_at = svc.now()
    props = {
        "payment_id": payment.id,
        "invoice_id": payment.invoice_id,
        "amount": _money(payment.amount, payment.currency),
        "currency": payment.currency,
        "method": payment.method_type,
        "provider": payment.provider,
        "attempt": payment.attempt,
        "decline_code": decline_code,
        "retryable": retryable,
    }
    _emit(session, svc, "payment.failed", payment.customer_id, props)
    if payment.invoice_id is not None:
        _emit_invoice_failed(session, svc, payment.invoice_id, payment.customer_id, payment.attempt,
                             decline_code, retryable, payment.id, reads)


def _emit_invoice_failed(session: Session, svc: PaymentService, invoice_id: str, customer_id: str,
                         attempt: int, decline_code: str, retryable: bool, payment_id: str | None,
                         reads: Reads = ONE_BY_ONE) -> None:
    rec = reads.receivable(session, invoice_id)  # a batch's own: not written before its end
    remaining, currency = (_money(rec.remaining, rec.currency), rec.currency) if rec else (None, None)
    _emit(session, svc, "invoice.payment_failed", customer_id, {
        "invoice_id": invoice_id,
        "attempt": attempt,
        "decline_code": decline_code,
        "retryable": retryable,
        "payment_id": payment_id,
        "amount_due": remaining,
        "currency": currency,
        # The same facts nested, so rule paths such as `invoice.attempt` read naturally.
        "invoice": {"id": invoice_id, "attempt": attempt, "amount_due": remaining, "currency": currency},
    })


def apply_charge_outcome(session: Session, svc: PaymentService, payment: Payment, outcome: ChargeOutcome,
                         reads: Reads = ONE_BY_ONE) -> str:
    """Move a payment to what the provider says. Terminal states never change here (a late
    or duplicated webhook saying the same thing, or something older, is ignored). Returns the
    payment's status afterwards."""
    if payment.status != "pending":
        return payment.status
    now = svc.now()
    if outcome.provider_ref:
        payment.provider_ref = outcome.provider_ref
    payment.updated_at = now
    if outcome.state is PaymentState.PENDING:
        payment.needs_lookup = False
        return payment.status
    if outcome.state in (PaymentState.SUCCEEDED, PaymentState.REFUNDED):
        if outcome.currency != payment.currency:
            # The provider took another currency than we asked: never apply it blindly.
            payment.needs_lookup = True
            return payment.status
        payment.status = "succeeded"
        payment.needs_lookup = False
        # The money that moved is what the provider captured.
        payment.amount = outcome.amount
        payment.captured_at = outcome.captured_at or now
        _receive(session, svc, payment, reads=reads)
        return payment.status
    _fail(session, svc, payment, outcome.decline_code or "generic_decline", bool(outcome.retryable), reads)
    return payment.status
