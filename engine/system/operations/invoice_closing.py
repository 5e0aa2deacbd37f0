"""What an operator does to an issued invoice: credit it, refund it through the provider, void
it, write it off. Each writes the invoice (sales) and the receivable and journal (payments) in
the caller's transaction, checks first: a refusal (or a refund the provider refuses, last)
writes nothing once the caller rolls back. The HTTP door is engine/api/routes/invoice_closing.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine import payments, sales
from engine.clock import Clock
from engine.errors import OperationError
from engine.money import quantum


def credit_invoice(session: Session, invoice_id: str, amount: Decimal | None, reason: str, *, clock: Clock,
                   service: payments.PaymentService) -> dict[str, Any]:
    """A credit note for `amount` (None: all that is left to credit), applied to what is still
    due, the rest to the customer's balance."""
    note = sales.credit_invoice(session, invoice_id, amount, clock=clock, reason=reason)
    currency = note["currency"]
    payments.credit_receivable(
        session, invoice_id, Decimal(note["applied_to_invoice"]), Decimal(note["credited_to_balance"]),
        note["id"], service=service,
    )
    # A pack's own invoice: the note took its share of the credit back; the wallet fell.
    sales.announce_pack_balance(session, invoice_id, service.now())
    return {**note, "currency": currency}


def refund_invoice(session: Session, invoice_id: str, amount: Decimal | None, reason: str, *, clock: Clock,
                   service: payments.PaymentService) -> dict[str, Any]:
    """Refund `amount` (None: all that was paid and not refunded, an overpayment's credit the
    customer still holds included) through the provider, with a credit note for the part of the
    invoice it gives back: {refunds, refund (the one, or None), credit_note (None when all of it
    pays back an overpayment's credit), credit_repaid, amount, currency}."""
    invoice = sales.get_invoice(session, invoice_id)
    amount, over = payments.check_refund(session, invoice_id, amount, invoice["currency"])
    # The credit note first (sales checks the invoice is paid), the provider last: a
    # refusal there rolls the credit note back with everything else. What goes beyond the
    # invoice's total repays the customer's credit (payments' books): no credit note for it.
    note = None
    if amount > over:
        note = sales.refund_invoice(session, invoice_id, amount - over, clock=clock, reason=reason or "refund")
    elif invoice["status"] != "paid":
        raise OperationError("invoice_id", f"invoice {invoice_id} is {invoice['status']}; only a paid invoice is "
                             "refunded", "conflict")
    refunds = payments.refund_invoice_payments(session, invoice_id, amount, reason=reason, service=service)
    if note is not None:
        # A credit pack refunded: the refund's share of its credit goes (all that is left for a
        # full refund), and the journal reverses what that share deferred; the wallet fell.
        payments.refund_credit_pack(session, invoice["customer_id"], invoice_id, note["id"], Decimal(note["subtotal"]),
                                    note["currency"], service=service)
        sales.announce_pack_balance(session, invoice_id, service.now())
    currency = invoice["currency"]
    out = {"refunds": [payments.refund_to_dict(r) for r in refunds], "credit_note": note,
           "credit_repaid": str(over.quantize(quantum(currency))), "amount": str(amount.quantize(quantum(currency))),
           "currency": currency}
    out["refund"] = out["refunds"][0] if len(refunds) == 1 else None
    return out


def void_invoice(session: Session, invoice_id: str, *, clock: Clock,
                 service: payments.PaymentService) -> dict[str, Any]:
    """Void an open invoice (finalized or written off, nothing paid); anything else is a
    conflict naming invoice_id."""
    _closable(session, invoice_id, "void")
    invoice = sales.void_invoice(session, invoice_id, clock=clock)
    payments.close_receivable(session, invoice_id, "void", service=service)
    return invoice


def mark_uncollectible(session: Session, invoice_id: str, *, clock: Clock,
                       service: payments.PaymentService) -> dict[str, Any]:
    """Write off what an open invoice still owes (bad debt in the journal)."""
    invoice = sales.mark_uncollectible(session, invoice_id, clock=clock)
    payments.close_receivable(session, invoice_id, "uncollectible", service=service)
    return invoice


def _closable(session: Session, invoice_id: str, what: str) -> None:
    """Only an open invoice (finalized, nothing paid) is voided; sales says the rest."""
    invoice = sales.get_invoice(session, invoice_id)
    if invoice["status"] not in ("finalized", "uncollectible") or Decimal(invoice["amount_paid"]) > 0:
        raise OperationError("invoice_id", f"invoice {invoice_id} is {invoice['status']}"
                             f"{' with payments' if Decimal(invoice['amount_paid']) > 0 else ''}; only an open, unpaid "
                             f"invoice can be {what}ed", "conflict")
