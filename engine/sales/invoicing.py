"""Issuing an invoice: `issue_bill` writes the invoice of a `Bill`, its lines and its number,
or a credit note when the bill owes the customer money; `finalize` numbers it, takes the
customer's credit and writes its events; in batch mode (`defer_finalize`) the invoices stay
drafts until `finalize_deferred` numbers them with one counter update.

draft -> finalized -> paid | void | uncollectible | credited. The rest of what this module did
has a module of its own (numbering, invoice_views, collectors, invoice_status,
invoice_payments, credit_notes); every name callers imported from here still is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.money import Rounder
from engine.periods import Period
from engine.pricing import Bill, Line, fmt_quantity
from engine.pricing.document import Document
from engine.sales.book_lines import book_lines
from engine.sales.collectors import EVENTS, LINES, emit
from engine.sales.common import new_id
from engine.sales.credit_notes import CreditSettlement, apply_credit, issue_credit_note, refund_invoice
from engine.sales.errors import Conflict
from engine.sales.invoice_payments import CONSUMER, handle_payment_succeeded, mark_invoice_paid
from engine.sales.invoice_status import load_invoice, mark_uncollectible, mark_uncollectible_many, void_invoice
from engine.sales.invoice_views import credit_note_to_dict, invoice_event_properties, invoice_summary
from engine.sales.models import CreditNote, Customer, Invoice, InvoiceLine, Subscription
from engine.sales.numbering import lock_counter, next_number
from engine.sales.wallet import draw_wallet

ZERO = Decimal(0)

__all__ = [
    "CONSUMER",
    "DEFERRED",
    "EVENTS",
    "LINES",
    "ZERO",
    "Arrears",
    "CreditSettlement",
    "apply_credit",
    "credit_note_to_dict",
    "defer_finalize",
    "emit",
    "finalize",
    "finalize_deferred",
    "handle_payment_succeeded",
    "invoice_event_properties",
    "invoice_summary",
    "issue_bill",
    "issue_credit_note",
    "load_invoice",
    "lock_counter",
    "mark_invoice_paid",
    "mark_uncollectible",
    "mark_uncollectible_many",
    "next_number",
    "refund_invoice",
    "void_invoice",
]


@dataclass
class Arrears:
    """The closed period whose in-arrears usage an invoice bills."""

    period: Period
    plan_id: str
    version_id: int
    quantity: Decimal


def _line_rows(
    invoice_id: str, subscription_id: str | None, lines: Sequence[Line], rounder: Rounder
) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(lines):
        start, end = (line.period.start, line.period.end) if line.period else (None, None)
        rows.append(
            dict(
                invoice_id=invoice_id,
                subscription_id=subscription_id,
                position=i + 1,
                price_id=line.price_id,
                name=line.name or line.price_id,
                model=line.model,
                timing=line.timing,
                kind=line.kind,
                quantity=line.quantity,
                amount=line.amount,
                discount=line.discount,
                tax=line.tax,
                period_start=start,
                period_end=end,
                tiers=[
                    {"tier": t.tier, "quantity": fmt_quantity(t.quantity), "amount": rounder.fmt(t.amount)}
                    for t in line.tiers
                ],
                note=line.note[:300],
            )
        )
    return rows


def _write_lines(session: Session, rows: list[dict[str, Any]]) -> None:
    """Invoice lines as plain rows (no ORM objects: the billing run writes thousands)."""
    pending = session.info.get(LINES)
    if pending is not None:
        pending.extend(rows)
    elif rows:
        session.flush()  # the invoice first: lines reference it
        session.execute(insert(InvoiceLine), rows)


def issue_bill(
    session: Session,
    *,
    customer: Customer,
    subscription: Subscription | None,
    bill: Bill | Document,
    rounder: Rounder,
    reason: str,
    billing_key: str,
    now: datetime,
    version_id: int | None = None,
    period: Period | None = None,
    arrears: Arrears | None = None,
    payment_method: str | None = None,
    number: int | None = None,
    settlement: CreditSettlement | None = None,
) -> Invoice | CreditNote:
    """Finalize `bill` as an invoice (numbered, events written), or as a credit note when
    it owes the customer money (a downgrade of quantity, a cancellation's unused time).
    `number`: the document's number, taken beforehand by a caller numbering many at once.
    `settlement`: where a credit note's money goes (default: all of it to the balance)."""
    if bill.total < ZERO:
        return issue_credit_note(
            session,
            customer=customer,
            subscription_id=subscription.id if subscription else None,
            invoice_id=settlement.invoices[0][0].id if settlement and settlement.invoices else None,
            reason="cancellation" if reason in ("cancel", "final") else "proration",
            lines=[_line_dict(line, rounder, negate=True) for line in bill.lines],
            subtotal=-(bill.subtotal - bill.discount),
            tax=-bill.tax,
            total=-bill.total,
            currency=bill.currency,
            now=now,
            to_balance=True,
            number=number,
            settlement=settlement,
        )
    period = period or bill.period
    inv = Invoice(
        id=new_id("in"),
        customer_id=customer.id,
        subscription_id=subscription.id if subscription else None,
        billing_key=billing_key,
        reason=reason,
        status="draft",
        currency=bill.currency,
        plan_id=subscription.plan_id if subscription else bill.plan,
        catalog_version_id=version_id,
        period_start=period.start,
        period_end=period.end,
        subtotal=bill.subtotal,
        discount=bill.discount,
        tax=bill.tax,
        total=bill.total,
        credit_applied=ZERO,
        amount_due=bill.total,
        amount_paid=ZERO,
        tax_rate=bill.tax_decision.rate,
        tax_country=bill.tax_decision.country,
        reverse_charge=bill.tax_decision.reverse_charge,
        discounts=[{"source": d.source, "reason": d.reason, "amount": rounder.fmt(d.amount)} for d in bill.discounts],
        created_at=now,
    )
    if arrears is not None:
        inv.arrears_start = arrears.period.start
        inv.arrears_end = arrears.period.end
        inv.arrears_plan_id = arrears.plan_id
        inv.arrears_version_id = arrears.version_id
        inv.arrears_quantity = arrears.quantity
    session.add(inv)
    rows = _line_rows(inv.id, inv.subscription_id, bill.lines, rounder)
    _write_lines(session, rows)
    lines = book_lines(rows, inv.plan_id, reason, inv.currency)
    deferred = session.info.get(DEFERRED)
    if deferred is not None:
        deferred.append((inv, customer, payment_method, lines))
    else:
        finalize(session, inv, customer, now, payment_method=payment_method, number=number, lines=lines)
    return inv


DEFERRED = "sales_deferred_finalize"


def defer_finalize(session: Session) -> None:
    """Batch mode: invoices issued in this session stay drafts until `finalize_deferred`,
    which numbers them all with one counter update (the billing run's hot path)."""
    session.info[DEFERRED] = []
    session.info[LINES] = []


def finalize_deferred(session: Session, now: datetime) -> int:
    pending = session.info.pop(DEFERRED, None) or []
    lines = session.info.pop(LINES, None) or []
    if lines:
        session.flush()
        session.execute(insert(InvoiceLine), lines)
    if not pending:
        return 0
    last = next_number(session, "invoice", now.year, len(pending))
    first = last - len(pending) + 1
    for k, (inv, customer, payment_method, book) in enumerate(pending):
        finalize(session, inv, customer, now, payment_method=payment_method, number=first + k, lines=book)
    return len(pending)


def finalize(
    session: Session,
    inv: Invoice,
    customer: Customer,
    now: datetime,
    *,
    payment_method: str | None = None,
    number: int | None = None,
    lines: list[dict[str, Any]] | None = None,
) -> None:
    """Number the invoice, apply the customer's credit, write invoice.finalized (and
    invoice.paid when nothing is left to pay). `lines`: the books' view of its lines
    (book_lines), sent with invoice.finalized for the journal and revenue recognition."""
    if inv.status != "draft":
        raise Conflict("status", f"invoice {inv.id} is {inv.status}, not a draft")
    n = number if number is not None else next_number(session, "invoice", now.year)
    inv.number = f"INV-{now.year}-{n:06d}"
    inv.status = "finalized"
    inv.issued_at = now
    if customer.credit_balance > ZERO and inv.total > ZERO:
        applied = min(customer.credit_balance, inv.total)
        customer.credit_balance = customer.credit_balance - applied
        inv.credit_applied = applied
        inv.amount_due = inv.total - applied
    if customer.has_wallet:
        draw_wallet(session, inv, now)
    props = invoice_event_properties(inv)
    props["payment_method"] = payment_method or customer.payment_method
    props["tax_country"] = inv.tax_country
    if lines is not None:
        props["lines"] = lines
    emit(session, "invoice.finalized", inv.customer_id, props, time=now)
    if inv.amount_due <= ZERO:
        inv.status = "paid"
        inv.paid_at = now
        emit(session, "invoice.paid", inv.customer_id, invoice_event_properties(inv), time=now)


def _line_dict(line: Line, rounder: Rounder, *, negate: bool = False) -> dict[str, Any]:
    amount = -line.amount if negate else line.amount
    return {
        "price_id": line.price_id,
        "name": line.name,
        "kind": line.kind,
        "quantity": fmt_quantity(line.quantity),
        "amount": rounder.fmt(amount),
        "discount": rounder.fmt(-line.discount if negate else line.discount),
        "tax": rounder.fmt(-line.tax if negate else line.tax),
        "period": str(line.period) if line.period else None,
        "note": line.note,
    }
