"""Credit notes: numbered, their money settled against open invoices or the customer's balance,
and a paid invoice's refund (tax in the invoice's proportion). Moved from engine/sales/invoicing.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.money import quantum, to_decimal
from engine.sales.collectors import emit
from engine.sales.common import money, new_id, now_of
from engine.sales.errors import Conflict, SalesError
from engine.sales.invoice_status import load_invoice
from engine.sales.invoice_views import credit_note_to_dict, invoice_event_properties
from engine.sales.models import CreditNote, Customer, Invoice
from engine.sales.numbering import next_number

ZERO = Decimal(0)


@dataclass
class CreditSettlement:
    """Where a credit note's money goes: against open invoices first (each with the amount it
    takes off what that invoice owes), then to the customer's balance. What neither takes
    (a credit for charges never paid, on an invoice already closed) goes nowhere: balance
    credit is money the customer can spend, and only what they paid comes back."""

    invoices: list[tuple[Invoice, Decimal]] = field(default_factory=list)
    balance: Decimal = ZERO

    @property
    def applied(self) -> Decimal:
        return sum((amount for _, amount in self.invoices), ZERO)


def apply_credit(session: Session, inv: Invoice, amount: Decimal, now: datetime) -> None:
    """Take `amount` of credit off what an open invoice owes. Covered in full, the invoice is
    closed as `credited` (nothing left to collect, so no retry and no dunning for it) and
    `invoice.credited` is written. On a written-off invoice the credit lowers what was written
    off; it stays `uncollectible`."""
    if inv.status not in ("finalized", "uncollectible"):
        raise Conflict("status", f"invoice {inv.id} is {inv.status}; only an open invoice takes credit")
    inv.amount_due = inv.amount_due - amount
    if inv.status == "finalized" and inv.amount_paid >= inv.amount_due:
        inv.status = "credited"
        emit(session, "invoice.credited", inv.customer_id, invoice_event_properties(inv), time=now)


def issue_credit_note(
    session: Session,
    *,
    customer: Customer,
    subscription_id: str | None,
    invoice_id: str | None,
    reason: str,
    lines: list[dict[str, Any]],
    subtotal: Decimal,
    tax: Decimal,
    total: Decimal,
    currency: str,
    now: datetime,
    to_balance: bool,
    number: int | None = None,
    settlement: CreditSettlement | None = None,
) -> CreditNote:
    """A numbered credit note. Its money goes where `settlement` says; without one, all of
    it to the customer's balance (`to_balance`) or nowhere (a refund: payments returns it)."""
    n = number if number is not None else next_number(session, "credit_note", now.year)
    note = CreditNote(
        id=new_id("cn"),
        number=f"CN-{now.year}-{n:06d}",
        customer_id=customer.id,
        subscription_id=subscription_id,
        invoice_id=invoice_id,
        reason=reason,
        currency=currency,
        subtotal=subtotal,
        tax=tax,
        total=total,
        lines=lines,
        created_at=now,
    )
    session.add(note)
    if settlement is None:
        settlement = CreditSettlement(balance=total if to_balance else ZERO)
    note.to_balance = settlement.balance
    for inv, amount in settlement.invoices:
        apply_credit(session, inv, amount, now)
    if settlement.balance > ZERO:
        customer.credit_balance = customer.credit_balance + settlement.balance
    emit(
        session,
        "credit_note.issued",
        customer.id,
        {
            "credit_note_id": note.id,
            "number": note.number,
            "invoice_id": invoice_id,
            "subscription_id": subscription_id,
            "reason": reason,
            "currency": currency,
            "total": money(total, currency),
            "credited_to_balance": settlement.balance > ZERO,
            # Where the money went: off open invoices, to the balance (the rest nowhere).
            "applied_to_invoices": [
                {"invoice_id": inv.id, "amount": money(amount, currency)} for inv, amount in settlement.invoices
            ],
            "applied_to_invoice": money(settlement.applied, currency),
            "to_balance": money(settlement.balance, currency),
        },
        time=now,
    )
    return note


def _refund_tax(inv: Invoice, refunded: Decimal) -> Decimal:
    """The tax of `refunded` of the invoice's total: its share of the invoice's tax, half-even."""
    return (inv.tax * refunded / inv.total).quantize(quantum(inv.currency), ROUND_HALF_EVEN) if inv.total else ZERO


def refund_invoice(
    session: Session, invoice_id: str, amount: Decimal | str | None = None, *, clock: Clock, reason: str = "refund"
) -> dict[str, Any]:
    """A credit note refunding (part of) a paid invoice; payments returns the money."""
    inv = load_invoice(session, invoice_id, lock=True)
    if inv.status != "paid":
        raise Conflict("status", f"invoice {inv.id} is {inv.status}; only a paid invoice is refunded")
    refunded = sum(
        session.scalars(select(CreditNote.total).where(CreditNote.invoice_id == inv.id, CreditNote.reason == "refund")),
        ZERO,
    )
    left = inv.total - refunded
    value = left if amount is None else to_decimal(amount, "amount")
    if value <= ZERO or value > left:
        raise SalesError("amount", f"a refund is more than 0 and at most {left} (what is left to refund)")
    customer = session.get_one(Customer, inv.customer_id)
    # The refund carries tax in the invoice's proportion, on the cumulative refund (half-even;
    # docs/books.md): the refunds' taxes add up, so a full refund gives back exactly the tax.
    tax = _refund_tax(inv, refunded + value) - _refund_tax(inv, refunded)
    note = issue_credit_note(
        session,
        customer=customer,
        subscription_id=inv.subscription_id,
        invoice_id=inv.id,
        reason="refund",
        lines=[
            {"price_id": "refund", "name": reason or "Refund", "kind": "refund", "quantity": "1", "amount": str(value)}
        ],
        subtotal=value - tax,
        tax=tax,
        total=value,
        currency=inv.currency,
        now=now_of(clock),
        to_balance=False,
    )
    return credit_note_to_dict(note)
