"""Invoices meet the wallet: a finalized invoice draws down the customer's grants in its
currency before anything is collected (each line paid by named grants), a voided one gives
back what they paid. The invoice's total never changes: credit is a way of paying it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import credits
from engine.catalog.model import Catalog
from engine.sales.burn_totals import latest_catalogs
from engine.sales.collectors import LINES as PENDING_LINES  # a batch's lines not yet written
from engine.sales.common import money
from engine.sales.models import Invoice, InvoiceLine
from engine.store import add_event

ZERO = Decimal(0)


def _line_totals(session: Session, inv: Invoice) -> list[tuple[int, Decimal]]:
    """(position, amount - discount + tax) of the invoice's lines: the rows a batch still holds
    (session.info, written later in one INSERT) or the stored ones."""
    pending = session.info.get(PENDING_LINES)
    if pending:
        rows = sorted((r["position"], r["amount"], r.get("discount", ZERO), r.get("tax", ZERO))
                      for r in pending if r["invoice_id"] == inv.id)
        if rows:
            return [(p, a - d + t) for p, a, d, t in rows]
    stmt = (select(InvoiceLine.position, InvoiceLine.amount, InvoiceLine.discount, InvoiceLine.tax)
            .where(InvoiceLine.invoice_id == inv.id).order_by(InvoiceLine.position))
    return [(p, a - d + t) for p, a, d, t in session.execute(stmt)]


def _charges(session: Session, inv: Invoice) -> list[tuple[int, Decimal]]:
    """Each line's total (tax included), in line order, up to what the invoice still owes."""
    left = inv.amount_due
    out = []
    for position, total in _line_totals(session, inv):
        take = min(total, left)
        if take > ZERO:
            out.append((position, take))
            left -= take
    return out


def draw_wallet(session: Session, inv: Invoice, now: datetime) -> Decimal:
    """Pay what the invoice owes from the wallet; returns what the wallet paid."""
    if inv.amount_due <= ZERO or inv.billing_key.startswith("charge:pack:"):
        return ZERO  # a pack is bought with money: credit never pays for credit
    draws = credits.draw_down(session, inv.customer_id, inv.currency, _charges(session, inv), now,
                              invoice_id=inv.id)
    paid = sum((d.amount for d in draws), ZERO)
    inv.credit_applied += paid
    inv.amount_due -= paid
    if paid > ZERO:  # the balance fell: low or spent, said once per episode
        announce_balance(session, inv.customer_id, inv.currency, now)
    request_top_up(session, inv.customer_id, inv.currency, now, {"invoice_id": inv.id})
    return paid


def request_top_up(session: Session, customer_id: str, unit: str, now: datetime, why: dict[str, str]) -> bool:
    """Below the customer's top-up threshold: ask for the top-up (sales buys it on the bus,
    outside the caller's transaction), under the key that makes it happen once (`auto:N`, N
    the top-ups bought so far; a pack bought but not paid counts in the balance). `why` names
    the trigger in the event (`invoice_id`, or `by` and the pack's invoice). True when asked."""
    due = credits.due_top_up(session, customer_id, unit, now)
    if due is None:
        return False
    pack, key = due
    add_event(session, "credits.top_up_requested", customer_id, {"pack": pack, "key": key, **why}, time=now)
    return True


def give_back(session: Session, inv: Invoice, now: datetime) -> Decimal:
    """A voided invoice returns what grants paid to those grants; the rest of its
    credit_applied came from the credit balance."""
    if inv.credit_applied <= ZERO:
        return ZERO
    return credits.restore_invoice(session, inv.id, now)


def with_credit_lines(session: Session, inv: Invoice, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each line says which grants paid it (`paid_by_credits`), when any did."""
    if inv.credit_applied <= ZERO:
        return lines
    paid = credits.paid_by_credits(session, [inv.id])[inv.id]
    for line in lines:
        line["paid_by_credits"] = [{"grant_id": p["grant_id"], "amount": money(p["amount"], inv.currency)}
                                   for p in paid if p["line"] == line["position"]]
    return lines


def catalog_level(catalog: Catalog | None, unit: str) -> Decimal | None:
    """The catalog's `credits.low_balance` when its wallet is in `unit` (tokens for a token
    catalog), else None."""
    section = catalog.credits if catalog is not None else None
    return section.low_balance if section is not None and section.unit == unit else None


def announce_balance(session: Session, customer_id: str, unit: str, now: datetime) -> str | None:
    """`credits.announce_balance` with the customer's catalog's level in the unit (an invoice
    drawing the wallet, a grant voided or expired)."""
    catalog = latest_catalogs(session, [customer_id]).get(customer_id)
    return credits.announce_balance(session, customer_id, unit, now, catalog_level=catalog_level(catalog, unit))


def announce_pack_balance(session: Session, invoice_id: str, now: datetime) -> str | None:
    """After a credit note on a pack's own invoice took its share of the credit back: the
    balance events look at the wallet in the pack's unit, as after any fall, and below the
    customer's threshold the automatic top-up is asked for as an invoice's draw-down or a burn
    asks (None: the invoice sells no active pack, or no balance event is due). A note taking
    all that is left voids the grant as a refund does: no top-up for credit paid back."""
    inv = session.get(Invoice, invoice_id)
    grant = credits.grant_sold_by(session, inv.customer_id, invoice_id) if inv is not None else None
    if inv is None or grant is None or grant.status != "active":
        return None
    said = announce_balance(session, inv.customer_id, grant.unit, now)
    request_top_up(session, inv.customer_id, grant.unit, now, {"by": "credit_note", "pack_invoice_id": invoice_id})
    return said
