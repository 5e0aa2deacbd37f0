"""What payments tells other subsystems about an invoice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.payments.models import Payment, Receivable
from engine.payments.service import ZERO, _money
from engine.periods import iso_or_none

# --- queries for other subsystems ------------------------------------------------------------


def invoice_payment_summary(session: Session, invoice_id: str) -> dict[str, Any] | None:
    """What payments knows of an invoice, for GET /v1/invoices/{id}."""
    rec = session.get(Receivable, invoice_id)
    if rec is None:
        return None
    payments = session.scalars(
        select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.created_at)
    ).all()
    return {
        "invoice_id": rec.invoice_id,
        "status": rec.status,
        "currency": rec.currency,
        "amount_due": _money(rec.amount_due, rec.currency),
        "amount_paid": _money(rec.amount_paid, rec.currency),
        "credit_applied": _money(rec.credit_applied, rec.currency),
        "remaining": _money(max(rec.remaining, ZERO), rec.currency),
        "payment_reference": rec.payment_reference,
        "payments": [
            {
                "id": p.id, "attempt": p.attempt, "status": p.status, "amount": _money(p.amount, p.currency),
                "method": p.method_type, "provider": p.provider, "decline_code": p.decline_code,
                "retryable": p.retryable, "refunded": _money(p.refunded_amount, p.currency),
                "captured_at": iso_or_none(p.captured_at),
            }
            for p in payments
        ],
    }


def receivable_reference(session: Session, invoice_id: str) -> str | None:
    """The RF reference of an invoice's receivable (None: no receivable, or none given yet):
    one column, for a message that quotes it (invoice_payment_summary reads every payment)."""
    return session.scalar(select(Receivable.payment_reference).where(Receivable.invoice_id == invoice_id))


def receivable_references(session: Session, invoice_ids: Sequence[str]) -> dict[str, str | None]:
    """`receivable_reference` of each of `invoice_ids` that has a receivable, in one query (a
    batch of messages quoting them; an invoice without a receivable is not in the answer)."""
    if not invoice_ids:
        return {}
    rows = session.execute(
        select(Receivable.invoice_id, Receivable.payment_reference).where(Receivable.invoice_id.in_(invoice_ids))
    )
    return {str(invoice_id): reference for invoice_id, reference in rows}
