"""What payments does when an invoice is credited, refunded, voided or written off: the
receivable and the journal follow, and a refund goes back through the provider.

Journal:
  credit note on an open invoice   Dr credit_notes       / Cr receivables (applied part)
                                   Dr credit_notes       / Cr customer_credit (rest)
  refund                           Dr refunds, Dr tax_payable / Cr cash:<provider> (refunds.py)
  void                             Dr credit_notes, Dr tax_payable / Cr receivables (what was still due),
                                   Cr customer_credit (what payments applied of an overpayment: given back)
  uncollectible                    Dr bad_debt           / Cr receivables (what was still due)
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.money import quantum, to_decimal
from engine.payments import journal
from engine.payments.books.credits import credit_pack_note
from engine.payments.books.schedules import beyond, invoice_gross, schedule_credit, split_credit
from engine.payments.journal import Posting
from engine.payments.models import Payment, Refund
from engine.payments.receivables import customer_credit_balance, return_credit
from engine.payments.refunds import refund_payment
from engine.payments.service import ZERO, PaymentError, PaymentService, _money, _receivable
from engine.store import mark_processed

CREDIT_NOTES = "credit_notes"
BAD_DEBT = "bad_debt"
CONSUMER = "payments.adjustments"


def refundable(session: Session, invoice_id: str) -> tuple[Decimal, list[Payment]]:
    """What can still go back for an invoice: paid minus refunded minus refunds in flight, over
    its succeeded payments (newest first, the order refunds take them)."""
    paid = session.scalars(
        select(Payment).where(Payment.invoice_id == invoice_id, Payment.status.in_(("succeeded", "refunded")))
        .order_by(Payment.created_at.desc(), Payment.id.desc())
    ).all()
    total = ZERO
    for p in paid:
        total += p.amount - p.refunded_amount - _in_flight(session, p.id)
    return total, list(paid)


def _in_flight(session: Session, payment_id: str) -> Decimal:
    return sum(session.scalars(select(Refund.amount).where(Refund.payment_id == payment_id,
                                                           Refund.status == "pending")), ZERO)


def check_refund(session: Session, invoice_id: str, amount: Any, currency: str) -> tuple[Decimal, Decimal]:
    """The refund amount (None: all the invoice's payments can give back that the door allows),
    checked against what they can still give back, and the part of it beyond the invoice's total
    (docs/books.md): that part pays back an overpayment's credit, so the customer must still
    hold it; a refund asking more is refused naming `amount`, nothing written."""
    left, _ = refundable(session, invoice_id)
    gross = invoice_gross(session, invoice_id)
    refunded = _refunded(session, invoice_id)
    held = customer_credit_balance(session, _customer_of(session, invoice_id), currency, lock=True)
    room = min(left, max(gross - refunded, ZERO) + max(held, ZERO)) if gross > 0 else left
    try:
        value = room if amount is None else to_decimal(amount, "amount")
    except ValueError as exc:
        raise PaymentError(str(exc), "amount") from None
    if value <= 0 or value > left or value != value.quantize(quantum(currency)):
        raise PaymentError(f"a refund is more than 0 and at most {_money(left, currency)} {currency} "
                           f"(paid minus refunded on invoice {invoice_id}), in whole {quantum(currency)}", "amount")
    over = beyond(refunded, value, gross) if gross > 0 else ZERO
    if over > held:
        raise PaymentError(
            f"a refund of {_money(value, currency)} {currency} goes {_money(over, currency)} beyond what is left "
            f"of invoice {invoice_id}'s total ({_money(max(gross - refunded, ZERO), currency)}): that part pays "
            f"back an overpayment's credit, and the customer holds {_money(max(held, ZERO), currency)} {currency} "
            f"of it; at most {_money(room, currency)} can be refunded", "amount")
    return value, over


def _refunded(session: Session, invoice_id: str) -> Decimal:
    """What the invoice's payments refunded or are refunding (in flight)."""
    paid = session.scalars(select(Payment).where(Payment.invoice_id == invoice_id)).all()
    return sum((p.refunded_amount + _in_flight(session, p.id) for p in paid), ZERO)


def _customer_of(session: Session, invoice_id: str) -> str:
    rec = _receivable(session, invoice_id)
    return rec.customer_id if rec is not None else ""


def refund_invoice_payments(session: Session, invoice_id: str, amount: Decimal, *, reason: str,
                            service: PaymentService) -> list[Refund]:
    """Refund `amount` of an invoice through the provider, newest payment first. A provider's
    refusal raises (RefundRejected) and the caller's transaction writes nothing."""
    left = amount
    out: list[Refund] = []
    _, paid = refundable(session, invoice_id)
    for payment in paid:
        room = payment.amount - payment.refunded_amount - _in_flight(session, payment.id)
        if left <= 0 or room <= 0:
            continue
        part = min(room, left)
        out.append(refund_payment(session, payment.id, part, reason=reason, service=service))
        left -= part
    if left > 0:
        raise PaymentError(f"{left} of the refund is not covered by the invoice's payments", "amount")
    return out


def refund_to_dict(refund: Refund) -> dict[str, Any]:
    return {"id": refund.id, "payment_id": refund.payment_id, "status": refund.status,
            "amount": _money(refund.amount, refund.currency), "currency": refund.currency,
            "provider": refund.provider, "reason": refund.reason,
            "created_at": refund.created_at.isoformat()}


def credit_receivable(session: Session, invoice_id: str, applied: Decimal, to_balance: Decimal,
                      note_id: str, *, service: PaymentService) -> None:
    """A credit note: what it applies to the invoice is no longer collected. On a written-off
    invoice that part already left receivables for bad debt: the credit note takes it off bad
    debt instead (the write-off was smaller than booked)."""
    rec = _receivable(session, invoice_id)
    if rec is None:
        return
    reduced = BAD_DEBT if rec.status == "uncollectible" else journal.RECEIVABLES
    if applied > 0:
        rec.amount_due -= applied
        if rec.remaining <= 0 and rec.status == "open":
            rec.status = "paid"
    split = split_credit(session, invoice_id, applied + to_balance, rec.currency)
    postings = [Posting(CREDIT_NOTES, debit=split.net), Posting(split.tax_account, debit=split.tax),
                Posting(reduced, credit=applied), Posting(journal.CUSTOMER_CREDIT, credit=to_balance)]
    journal.post_entry(session, f"cn:{note_id}", service.now(), rec.currency, postings,
                       f"credit note {note_id} on {invoice_id}", invoice_id)
    # A pack's own invoice: its deferral given back as a refund's is (books/credits.py).
    if not credit_pack_note(session, rec.customer_id, invoice_id, note_id, split.net, rec.currency, service.now()):
        schedule_credit(session, invoice_id, note_id, split.net, when=service.now())


def close_receivable(session: Session, invoice_id: str, status: str, *, service: PaymentService) -> None:
    """Void or write off what an invoice still owed; collection stops for it."""
    rec = _receivable(session, invoice_id)
    if rec is None or rec.status != "open":
        return
    left = max(rec.remaining, ZERO)
    rec.status = status
    # A void gives back the customer credit payments applied to it (an earlier overpayment).
    given = rec.credit_applied if status == "void" else ZERO
    if given > 0:
        return_credit(session, rec, given, service.now())
    if left + given <= 0:
        return
    if status == "uncollectible":  # earned, not paid: an expense, revenue and tax stay
        postings = [Posting(BAD_DEBT, debit=left)]
    else:  # a void takes the invoice back: revenue, its schedule and its tax
        split = split_credit(session, invoice_id, left + given, rec.currency)
        postings = [Posting(CREDIT_NOTES, debit=split.net), Posting(split.tax_account, debit=split.tax)]
        schedule_credit(session, invoice_id, f"void:{invoice_id}", split.net, when=service.now())
    journal.post_entry(session, f"{status}:{invoice_id}", service.now(), rec.currency,
                       [*postings, Posting(journal.RECEIVABLES, credit=left), Posting(journal.CUSTOMER_CREDIT, credit=given)],
                       f"invoice {invoice_id} {status}", invoice_id)


def handle_invoice_closed(session: Session, envelope: dict[str, Any], *, service: PaymentService) -> None:
    """invoice.voided / invoice.uncollectible, whoever closed it (an operator, a dunning rule)."""
    if not mark_processed(session, CONSUMER, envelope["id"], service.now()):
        return
    props = envelope.get("properties") or {}
    invoice_id = props.get("invoice_id")
    if invoice_id:
        status = "void" if envelope.get("type") == "invoice.voided" else "uncollectible"
        close_receivable(session, str(invoice_id), status, service=service)


def handle_credit_note_issued(session: Session, envelope: dict[str, Any], *, service: PaymentService) -> None:
    """A cancellation's credit note (sales settles it: off the period's open invoices first,
    then to the balance): those invoices are collected that much less, and the journal
    follows. Operator credit notes are booked by their route (`credit_receivable`)."""
    props = envelope.get("properties") or {}
    if props.get("reason") not in ("cancellation", "proration") or \
            not mark_processed(session, CONSUMER, envelope["id"], service.now()):
        return
    applied = [(str(a["invoice_id"]), to_decimal(a["amount"], "amount")) for a in props.get("applied_to_invoices") or []]
    to_balance = to_decimal(props.get("to_balance") or "0", "to_balance")
    if not applied and to_balance > 0:
        # All of it to the balance (a downgrade's unused time): the customer's credit grows
        # now, and shrinks when sales applies it to a later invoice (credit_applied).
        journal.post_entry(session, f"cn:{props.get('credit_note_id')}", service.now(), str(props["currency"]),
                           [Posting(CREDIT_NOTES, debit=to_balance), Posting(journal.CUSTOMER_CREDIT, credit=to_balance)],
                           f"credit note {props.get('credit_note_id')} to the balance", props.get("credit_note_id"))
        return
    for k, (invoice_id, amount) in enumerate(applied):
        credit_receivable(session, invoice_id, amount, to_balance if k == 0 else ZERO,
                          f"{props.get('credit_note_id')}:{k}", service=service)


def invoice_refunds(session: Session, invoice_id: str) -> list[dict[str, Any]]:
    """The refunds of an invoice's payments, oldest first (for GET /v1/invoices/{id})."""
    rows = session.scalars(
        select(Refund).join(Payment, Payment.id == Refund.payment_id)
        .where(Payment.invoice_id == invoice_id).order_by(Refund.created_at, Refund.id)
    )
    return [refund_to_dict(r) for r in rows]
