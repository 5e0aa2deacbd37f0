"""Credit notes against one invoice, asked for by an operator (`POST /v1/invoices/{id}/credit_notes`).

A credit note lowers what the customer owes on that invoice: on an open invoice it is applied
to what remains due (the rest, if any, goes to the customer's balance; covered in full, the
invoice closes as `credited`); on a paid invoice all of it goes to the balance; on a written-off
invoice it lowers the amount written off first (never paid, so no balance for that part). It never exceeds the invoice's total minus what earlier credit notes
already credited. Refunds are credit notes too (`refund_invoice`), issued with the refund.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from engine.clock import Clock
from engine.money import quantum, to_decimal
from engine.sales.common import money, now_of
from engine.sales.errors import Conflict, SalesError
from engine.sales.invoicing import CreditSettlement, credit_note_to_dict, issue_credit_note, load_invoice
from engine.sales.models import CreditNote, Customer, Invoice

ZERO = Decimal(0)
CREDITABLE = ("finalized", "uncollectible", "paid")


def credited_so_far(session: Any, invoice_id: str) -> Decimal:
    return sum(session.scalars(select(CreditNote.total).where(CreditNote.invoice_id == invoice_id)), ZERO)


def _settlement(inv: Invoice, value: Decimal) -> CreditSettlement:
    """Where an operator's credit goes: off what an open invoice still owes (covered in full,
    it closes as `credited`, as a cancellation's credit does), the rest to the balance. A
    written-off invoice's unpaid part was never paid: the credit lowers the write-off first and
    gives the customer spendable balance only beyond it."""
    open_part = max(inv.amount_due - inv.amount_paid, ZERO) if inv.status != "paid" else ZERO
    applied = min(value, open_part)
    return CreditSettlement([(inv, applied)] if applied > ZERO else [], value - applied)


def credit_invoice(
    session: Any, invoice_id: str, amount: Decimal | str | None = None, *, clock: Clock, reason: str = ""
) -> dict[str, Any]:
    """Issue a credit note for (part of) an issued invoice. Checks everything before writing:
    a draft or void invoice is a Conflict on invoice_id, an amount above what is left to
    credit a SalesError on amount."""
    inv = load_invoice(session, invoice_id, lock=True)
    if inv.status not in CREDITABLE:
        raise Conflict("invoice_id", f"invoice {inv.id} is {inv.status}; only an issued invoice is credited")
    left = inv.total - credited_so_far(session, inv.id)
    try:
        value = left if amount is None else to_decimal(amount, "amount")
    except ValueError as exc:
        raise SalesError("amount", str(exc)) from None
    if value <= ZERO or value > left or value != value.quantize(quantum(inv.currency)):
        raise SalesError("amount", f"a credit note is more than 0 and at most {left} {inv.currency} "
                                   f"(the invoice's total minus earlier credit notes), in whole {quantum(inv.currency)}")
    customer = session.get(Customer, inv.customer_id)
    assert customer is not None
    now = now_of(clock)
    settlement = _settlement(inv, value)
    tax = (inv.tax * value / inv.total).quantize(quantum(inv.currency)) if inv.total else ZERO
    note = issue_credit_note(
        session, customer=customer, subscription_id=inv.subscription_id, invoice_id=inv.id,
        reason="credit", lines=[{"price_id": "credit", "name": reason or "Credit", "kind": "credit",
                                 "quantity": "1", "amount": str(value)}],
        subtotal=value - tax, tax=tax, total=value, currency=inv.currency, now=now, to_balance=False,
        settlement=settlement,
    )
    applied, to_balance = settlement.applied, settlement.balance
    out = credit_note_to_dict(note)
    out["applied_to_invoice"] = money(applied, inv.currency)
    out["credited_to_balance"] = money(to_balance, inv.currency)
    out["reason_text"] = reason
    return out
