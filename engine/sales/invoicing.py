"""Issuing invoices and credit notes, gapless numbering, and invoice statuses.

draft -> finalized -> paid | void | uncollectible | credited. The billing run and the subscription
operations build a `Bill` with the pure pricing engine and hand it to `issue_bill`, which
writes the invoice, its lines, its number and its events in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.money import Rounder, quantum, to_decimal
from engine.periods import Period, iso_or_none
from engine.pricing import Bill, Line, fmt_quantity
from engine.pricing.document import Document
from engine.sales.book_lines import book_lines
from engine.sales.common import money, new_id, now_of, number
from engine.sales.errors import Conflict, NotFound, SalesError, required_id
from engine.sales.loading import load_by_id
from engine.sales.models import Counter, CreditNote, Customer, Invoice, InvoiceLine, InvoicePayment, Subscription
from engine.sales.progressive_void import reverse_interim
from engine.sales.wallet import draw_wallet, give_back
from engine.store import add_event, add_events, mark_processed

ZERO = Decimal(0)
CONSUMER = "sales.handlers"  # distinct from the bus's own record under "sales"


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def lock_counter(session: Session, kind: str, year: int) -> None:
    """Take the counter's row lock now. Every writer of invoice numbers locks it first, so
    concurrent billing runs serialise on it instead of deadlocking on subscription rows."""
    name = f"{kind}:{year}"
    session.execute(
        _insert(session)(Counter).values(name=name, value=0).on_conflict_do_nothing(index_elements=["name"])
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Counter.value).where(Counter.name == name).with_for_update())


def next_number(session: Session, kind: str, year: int, count: int = 1) -> int:
    """The next number of a gapless yearly sequence (the last of `count` taken at once).
    The increment commits or rolls back with the documents that use it, so no number is
    ever skipped or used twice."""
    name = f"{kind}:{year}"
    stmt = (
        _insert(session)(Counter)
        .values(name=name, value=count)
        .on_conflict_do_update(index_elements=["name"], set_={"value": Counter.value + count})
        .returning(Counter.value)
    )
    return int(session.execute(stmt).scalar_one())


@dataclass
class Arrears:
    """The closed period whose in-arrears usage an invoice bills."""

    period: Period
    plan_id: str
    version_id: int
    quantity: Decimal


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


LINES = "sales_deferred_lines"
EVENTS = "sales_deferred_events"


def emit(session: Session, type: str, customer_id: str | None, properties: dict[str, Any], *, time: datetime) -> None:
    """`add_event`; inside a bulk call (`session.info[EVENTS]` a list) the event is kept to
    be written with the others in one INSERT, in the same order (no ORM object per event)."""
    pending = session.info.get(EVENTS)
    if pending is None:
        add_event(session, type, customer_id, properties, time=time)
    else:
        pending.append((type, customer_id, properties, time))


def _write_lines(session: Session, rows: list[dict[str, Any]]) -> None:
    """Invoice lines as plain rows (no ORM objects: the billing run writes thousands)."""
    pending = session.info.get(LINES)
    if pending is not None:
        pending.extend(rows)
    elif rows:
        session.flush()  # the invoice first: lines reference it
        session.execute(insert(InvoiceLine), rows)


def invoice_event_properties(inv: Invoice) -> dict[str, Any]:
    return {
        "invoice_id": inv.id,
        "number": inv.number,
        "customer_id": inv.customer_id,
        "subscription_id": inv.subscription_id,
        "status": inv.status,
        "reason": inv.reason,
        "currency": inv.currency,
        "subtotal": money(inv.subtotal, inv.currency),
        "discount": money(inv.discount, inv.currency),
        "tax": money(inv.tax, inv.currency),
        "total": money(inv.total, inv.currency),
        "credit_applied": money(inv.credit_applied, inv.currency),
        "amount_due": money(inv.amount_due, inv.currency),
        "period_start": iso_or_none(inv.period_start),
        "period_end": iso_or_none(inv.period_end),
        "plan": inv.plan_id,
        "issued_at": iso_or_none(inv.issued_at),
    }


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
            "applied_to_invoices": [{"invoice_id": inv.id, "amount": money(amount, currency)}
                                    for inv, amount in settlement.invoices],
            "applied_to_invoice": money(settlement.applied, currency),
            "to_balance": money(settlement.balance, currency),
        },
        time=now,
    )
    return note


# --- statuses ---------------------------------------------------------------------------------


def load_invoice(session: Session, invoice_id: Any, *, lock: bool = False) -> Invoice:
    return load_by_id(session, Invoice, invoice_id, "invoice_id", "invoice", "an", lock=lock)


def mark_invoice_paid(
    session: Session,
    invoice_id: str,
    amount: Decimal | str | None = None,
    currency: str | None = None,
    *,
    clock: Clock | None = None,
    paid_at: datetime | None = None,
    event_id: str | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """Record a payment on an invoice; when it covers what is due, the invoice is paid and
    `invoice.paid` is written. A payment with an event id already recorded is ignored."""
    inv = load_invoice(session, invoice_id, lock=True)
    when = paid_at or (now_of(clock) if clock else None)
    if when is None:
        raise SalesError("paid_at", "required: when the payment was made")
    if inv.status in ("void", "draft"):
        raise Conflict("status", f"invoice {inv.id} is {inv.status}; it cannot be paid")
    if currency is not None and currency != inv.currency:
        raise SalesError("currency", f"the invoice is in {inv.currency}, the payment in {currency}")
    value = inv.amount_due - inv.amount_paid if amount is None else to_decimal(amount, "amount")
    if value < ZERO:
        raise SalesError("amount", "a payment is not negative")
    if event_id is not None and session.scalar(select(InvoicePayment.id).where(InvoicePayment.event_id == event_id)):
        return invoice_summary(inv)
    if value > ZERO or inv.status != "paid":
        session.add(
            InvoicePayment(
                invoice_id=inv.id,
                amount=value,
                currency=inv.currency,
                event_id=event_id,
                reference=reference,
                paid_at=when,
            )
        )
        inv.amount_paid = inv.amount_paid + value
    if inv.status in ("finalized", "uncollectible") and inv.amount_paid >= inv.amount_due:
        inv.status = "paid"
        inv.paid_at = when
        add_event(session, "invoice.paid", inv.customer_id, invoice_event_properties(inv), time=when)
    return invoice_summary(inv)


def handle_payment_succeeded(session: Session, envelope: Mapping[str, Any], *, now: datetime | None = None) -> bool:
    """Bus handler for `payment.succeeded` (properties invoice_id, amount, currency): marks
    the invoice paid. Idempotent by event id; returns False for a redelivery or a payment
    that names no invoice of ours."""
    event_id = envelope.get("id")
    props = envelope.get("properties") or {}
    invoice_id = props.get("invoice_id")
    when_raw = envelope.get("time")
    when = now
    if isinstance(when_raw, str):
        when = datetime.fromisoformat(when_raw.replace("Z", "+00:00"))
    elif isinstance(when_raw, datetime):
        when = when_raw
    if when is None or when.tzinfo is None:
        raise SalesError("time", "the payment event has no time with a zone")
    if not isinstance(event_id, str) or not mark_processed(session, CONSUMER, event_id, when):
        return False
    if not invoice_id or session.get(Invoice, invoice_id) is None:
        return False
    amount = props.get("applied_to_invoice", props.get("amount"))
    mark_invoice_paid(
        session,
        invoice_id,
        amount,
        props.get("currency"),
        paid_at=when,
        event_id=event_id,
        reference=props.get("payment_id") or props.get("provider_reference"),
    )
    return True


def void_invoice(session: Session, invoice_id: str, *, clock: Clock, reason: str = "") -> dict[str, Any]:
    inv = load_invoice(session, invoice_id, lock=True)
    if inv.status not in ("draft", "finalized", "uncollectible"):
        raise Conflict("status", f"invoice {inv.id} is {inv.status}; only an unpaid invoice can be voided")
    if inv.amount_paid > ZERO:
        raise Conflict("status", f"invoice {inv.id} has payments; refund with a credit note instead")
    now = now_of(clock)
    inv.status = "void"
    inv.voided_at = now
    if inv.reason == "progressive":  # the period's close must not deduct it (engine/sales/progressive_void.py)
        reverse_interim(session, inv.id, now)
    from_balance = inv.credit_applied - give_back(session, inv, now)
    if from_balance > ZERO:
        customer = session.get_one(Customer, inv.customer_id)
        customer.credit_balance = customer.credit_balance + from_balance
    props = invoice_event_properties(inv)
    props["reason"] = reason
    add_event(session, "invoice.voided", inv.customer_id, props, time=now)
    return invoice_summary(inv)


def mark_uncollectible(session: Session, invoice_id: str, *, clock: Clock) -> dict[str, Any]:
    """Write a finalized invoice off: `mark_uncollectible_many` with one id."""
    required_id(invoice_id, "invoice_id", "an invoice id")
    return mark_uncollectible_many(session, [invoice_id], clock=clock)[0]


def mark_uncollectible_many(session: Session, invoice_ids: Sequence[str], *, clock: Clock) -> list[dict[str, Any]]:
    """Write finalized invoices off (status uncollectible, one invoice.uncollectible event
    each, in order), from one locking read and one batched update. Every invoice is checked first: an unknown, repeated
    or not finalized one raises and nothing is written."""
    ids = list(invoice_ids)
    for i, invoice_id in enumerate(ids):
        required_id(invoice_id, f"invoice_ids[{i}]", "an invoice id")
    if len(set(ids)) < len(ids):
        raise SalesError("invoice_ids", f"invoice {next(x for x in ids if ids.count(x) > 1)!r} appears more than once")
    now = now_of(clock)
    found: dict[str, Invoice] = {}
    ordered = sorted(ids)  # locked in one order by every caller: no deadlock between two
    for start in range(0, len(ordered), 1000):
        stmt = (select(Invoice).where(Invoice.id.in_(ordered[start:start + 1000])).order_by(Invoice.id)
                .with_for_update().execution_options(populate_existing=True))
        found.update((inv.id, inv) for inv in session.scalars(stmt))
    for invoice_id in ids:
        inv = found.get(invoice_id)
        if inv is None:
            raise NotFound("invoice_id", f"unknown invoice {invoice_id!r}")
        if inv.status != "finalized":
            raise Conflict("status", f"invoice {inv.id} is {inv.status}; only a finalized invoice becomes uncollectible")
    out, events = [], []
    for invoice_id in ids:
        inv = found[invoice_id]
        inv.status = "uncollectible"
        events.append(("invoice.uncollectible", inv.customer_id, invoice_event_properties(inv), now))
        out.append(invoice_summary(inv))
    add_events(session, events)
    return out


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


def invoice_summary(inv: Invoice) -> dict[str, Any]:
    return {
        "id": inv.id,
        "number": inv.number,
        "customer_id": inv.customer_id,
        "subscription_id": inv.subscription_id,
        "status": inv.status,
        "reason": inv.reason,
        "currency": inv.currency,
        "plan": inv.plan_id,
        "period": {"start": iso_or_none(inv.period_start), "end": iso_or_none(inv.period_end)},
        "subtotal": money(inv.subtotal, inv.currency),
        "discount": money(inv.discount, inv.currency),
        "discounts": list(inv.discounts or []),
        "tax": money(inv.tax, inv.currency),
        "tax_rate": number(inv.tax_rate),
        "tax_country": inv.tax_country,
        "reverse_charge": inv.reverse_charge,
        "total": money(inv.total, inv.currency),
        "credit_applied": money(inv.credit_applied, inv.currency),
        # Credit notes taken off it (a cancellation's unused time): amount_due is what is left.
        "amount_credited": money(inv.total - inv.credit_applied - inv.amount_due, inv.currency),
        "amount_due": money(inv.amount_due, inv.currency),
        "amount_paid": money(inv.amount_paid, inv.currency),
        "issued_at": iso_or_none(inv.issued_at),
        "paid_at": iso_or_none(inv.paid_at),
    }


def credit_note_to_dict(note: CreditNote) -> dict[str, Any]:
    return {
        "id": note.id,
        "number": note.number,
        "customer_id": note.customer_id,
        "subscription_id": note.subscription_id,
        "invoice_id": note.invoice_id,
        "reason": note.reason,
        "currency": note.currency,
        "subtotal": money(note.subtotal, note.currency),
        "tax": money(note.tax, note.currency),
        "total": money(note.total, note.currency),
        # To the customer's balance; null on a note older than this field.
        "to_balance": None if note.to_balance is None else money(note.to_balance, note.currency),
        "lines": list(note.lines or []),
        "created_at": note.created_at.isoformat(),
    }
