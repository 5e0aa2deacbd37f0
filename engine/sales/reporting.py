"""Reads for the console's overview: the facts of issued invoices, one small row each.

Plain columns in plain tuples (no ORM objects, no JSON) so that 100,000 invoices read in well
under a second; the figures are computed from them by `engine.console.figures`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine.sales.models import Invoice, PlanOwner, Subscription
from engine.store.days import as_day, exact, utc_day

# Invoices that bill a period of service (not a proration, a final invoice or a one-off).
RECURRING_REASONS = ("start", "cycle")
# Issued and not withdrawn: what the customer was asked to pay.
BILLED_STATUSES = ("finalized", "paid", "uncollectible")
_CHUNK = 1000


class InvoiceFact(NamedTuple):
    """A tuple, not a frozen dataclass: 100,000 of them are built per overview, and a frozen
    dataclass sets each field through object.__setattr__."""

    id: str
    customer_id: str
    catalog: str | None
    plan_id: str | None
    currency: str
    status: str
    reason: str
    issued_on: date
    period_start: date | None
    period_end: date | None
    subtotal: Decimal
    discount: Decimal
    total: Decimal


def invoice_facts(session: Session, start: date, end: date, *, currency: str | None = None) -> list[InvoiceFact]:
    """Invoices billed before `end` that were issued from `start` on, or whose service period
    reaches past `start` (an annual invoice of last year still counts for this month's MRR);
    of one `currency` when given (the figures never add two)."""
    lo, hi = _at(start), _at(end)
    stmt = (
        select(Invoice.id, Invoice.customer_id, Subscription.catalog, Invoice.plan_id, Invoice.currency,
               Invoice.status, Invoice.reason, utc_day(session, Invoice.issued_at), Invoice.period_start,
               Invoice.period_end, exact(session, Invoice.subtotal), exact(session, Invoice.discount),
               exact(session, Invoice.total))
        .outerjoin(Subscription, Subscription.id == Invoice.subscription_id)
        .where(Invoice.status.in_(BILLED_STATUSES), Invoice.issued_at < hi,
               or_(Invoice.issued_at >= lo, Invoice.period_end > start))
    )
    if currency is not None:
        stmt = stmt.where(Invoice.currency == currency)
    owners = plan_catalogs(session)
    return [
        InvoiceFact(r[0], r[1], r[2] or owners.get(r[3] or ""), r[3], r[4], r[5], r[6], as_day(r[7]),
                    r[8], r[9], r[10], r[11], r[12])
        for r in session.connection().execute(stmt).all()
    ]


def invoice_currencies(session: Session, start: date, end: date) -> dict[str, int]:
    """How many invoices `invoice_facts` would read in each currency (one GROUP BY)."""
    lo, hi = _at(start), _at(end)
    stmt = (select(Invoice.currency, func.count())
            .where(Invoice.status.in_(BILLED_STATUSES), Invoice.issued_at < hi,
                   or_(Invoice.issued_at >= lo, Invoice.period_end > start))
            .group_by(Invoice.currency))
    return {str(c): int(n) for c, n in session.execute(stmt)}


def plan_catalogs(session: Session) -> dict[str, str]:
    """Each published plan's catalog (a plan id names one plan across every catalog)."""
    return {p: c for p, c in session.execute(select(PlanOwner.plan_id, PlanOwner.catalog))}


def invoice_catalogs(session: Session, invoice_ids: Iterable[str]) -> dict[str, str]:
    """The catalog of each given invoice (by its subscription, else its plan's owner)."""
    ids = sorted(set(invoice_ids))
    owners = plan_catalogs(session)
    out: dict[str, str] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = (select(Invoice.id, Subscription.catalog, Invoice.plan_id)
                .outerjoin(Subscription, Subscription.id == Invoice.subscription_id)
                .where(Invoice.id.in_(ids[i:i + _CHUNK])))
        for iid, catalog, plan in session.execute(stmt):
            owner = catalog or owners.get(plan or "")
            if owner:
                out[iid] = owner
    return out


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)
