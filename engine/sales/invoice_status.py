"""An issued invoice's statuses: loaded by id, voided, written off (`mark_uncollectible` is
`mark_uncollectible_many` with one id). Moved from engine/sales/invoicing.py."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.sales.common import now_of
from engine.sales.errors import Conflict, NotFound, SalesError, required_id
from engine.sales.invoice_views import invoice_event_properties, invoice_summary
from engine.sales.loading import load_by_id
from engine.sales.models import Customer, Invoice
from engine.sales.progressive_void import reverse_interim
from engine.sales.wallet import give_back
from engine.store import add_event, add_events

ZERO = Decimal(0)


def load_invoice(session: Session, invoice_id: Any, *, lock: bool = False) -> Invoice:
    return load_by_id(session, Invoice, invoice_id, "invoice_id", "invoice", "an", lock=lock)


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
        stmt = (
            select(Invoice)
            .where(Invoice.id.in_(ordered[start : start + 1000]))
            .order_by(Invoice.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        found.update((inv.id, inv) for inv in session.scalars(stmt))
    for invoice_id in ids:
        inv = found.get(invoice_id)
        if inv is None:
            raise NotFound("invoice_id", f"unknown invoice {invoice_id!r}")
        if inv.status != "finalized":
            raise Conflict(
                "status", f"invoice {inv.id} is {inv.status}; only a finalized invoice becomes uncollectible"
            )
    out, events = [], []
    for invoice_id in ids:
        inv = found[invoice_id]
        inv.status = "uncollectible"
        events.append(("invoice.uncollectible", inv.customer_id, invoice_event_properties(inv), now))
        out.append(invoice_summary(inv))
    add_events(session, events)
    return out
