"""Payments recorded on invoices: `mark_invoice_paid`, and the bus handler of
`payment.succeeded` that calls it (idempotent by event id). Moved from engine/sales/invoicing.py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.money import to_decimal
from engine.sales.common import now_of
from engine.sales.errors import Conflict, SalesError
from engine.sales.invoice_status import load_invoice
from engine.sales.invoice_views import invoice_event_properties, invoice_summary
from engine.sales.models import Invoice, InvoicePayment
from engine.store import add_event, mark_processed

ZERO = Decimal(0)


CONSUMER = "sales.handlers"  # distinct from the bus's own record under "sales"


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
