"""A bank transfer applied to one invoice: the payment (record_manual_payment) and the
charges the bank kept, journalled. Used for the lines matching cannot write in bulk and for
an operator's decisions.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from engine.payments import journal
from engine.payments.journal import Posting
from engine.payments.manual import record_manual_payment
from engine.payments.models import (
    Payment,
    Receivable,
)
from engine.payments.service import PaymentService

BANK_CHARGES = "bank_charges"


def apply_transfer(session: Session, svc: PaymentService, booked_on: datetime | None, reference: str | None,
           invoice_id: str, amount: Decimal, charges: Decimal, key: str, provider_ref: str,
           recorded_by: str, account: str) -> Payment:
    """Record `amount` as a bank transfer paying the invoice; journal the charges the bank
    kept. `booked_on` and `reference` are the bank line's, `account` its statement's (the
    money is journalled on `cash:bank:<account>`); the caller adds the payment to its
    payment_ids."""
    cash = journal.bank_cash_account(account)
    rec = session.get_one(Receivable, invoice_id)
    payment = record_manual_payment(
        session, customer_id=rec.customer_id, amount=amount, currency=rec.currency,
        invoice_id=rec.invoice_id, method_type="bank_transfer", reference=reference or rec.payment_reference,
        received_at=booked_on, recorded_by=recorded_by[:64], idempotency_key=key,
        provider="bank", provider_ref=provider_ref[:100], cash_account=cash, service=svc,
    )
    if charges:
        journal.post_entry(
            session, f"bankfee:{payment.id}", booked_on or svc.now(), rec.currency,
            [Posting(BANK_CHARGES, debit=charges), Posting(cash, credit=charges)],
            f"charges the bank kept from a transfer for invoice {rec.invoice_id}", rec.invoice_id,
        )
    return payment
