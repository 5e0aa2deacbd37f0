"""Read functions for the HTTP API, the console, access checks and other subsystems."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.clock import ensure_aware
from engine.periods import Period
from engine.pricing import fmt_quantity
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.common import money, whole_between
from engine.sales.customers import load_customer
from engine.sales.errors import NotFound, SalesError
from engine.sales.invoice_status import load_invoice
from engine.sales.invoice_views import credit_note_to_dict, invoice_summary
from engine.sales.models import CreditNote, Invoice, InvoiceLine, InvoicePayment, Subscription
from engine.sales.usage_count import count_in_sql
from engine.sales.usage_source import UsageSource, usage_for
from engine.sales.wallet import with_credit_lines

LIVE = ("active", "trialing")


def list_invoices(session: Session, customer_id: str, page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """A customer's invoices, newest first, one page at a time."""
    load_customer(session, customer_id)
    if not whole_between(page, 1):
        raise SalesError("page", "a page number, 1 or more")
    if not whole_between(per_page, 1, 500):
        raise SalesError("per_page", "between 1 and 500")
    total = session.scalar(select(func.count()).select_from(Invoice).where(Invoice.customer_id == customer_id)) or 0
    rows = session.scalars(
        select(Invoice)
        .where(Invoice.customer_id == customer_id)
        .order_by(Invoice.created_at.desc(), Invoice.number.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return {"items": [invoice_summary(i) for i in rows], "page": page, "per_page": per_page, "total": int(total)}


def invoice_lines(session: Session, invoice_id: str, currency: str = "USD") -> list[dict[str, Any]]:
    rows = session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.position)
    )
    return [
        {
            "position": r.position,
            "price_id": r.price_id,
            "name": r.name,
            "model": r.model,
            "timing": r.timing,
            "kind": r.kind,
            "quantity": fmt_quantity(r.quantity),
            "amount": money(r.amount, currency),
            "discount": money(r.discount, currency),
            "tax": money(r.tax, currency),
            "total": money(r.amount - r.discount + r.tax, currency),
            "period": {"start": r.period_start.isoformat(), "end": r.period_end.isoformat()}
            if r.period_start and r.period_end
            else None,
            "tiers": list(r.tiers or []),
            "note": r.note,
        }
        for r in rows
    ]


def get_invoice(session: Session, invoice_id: str) -> dict[str, Any]:
    """An invoice with its lines, payments and credit notes (`GET /v1/invoices/{id}`)."""
    inv = load_invoice(session, invoice_id)
    out = invoice_summary(inv)
    out["lines"] = with_credit_lines(session, inv, invoice_lines(session, inv.id, inv.currency))
    out["payments"] = [
        {
            "amount": money(p.amount, p.currency),
            "currency": p.currency,
            "paid_at": p.paid_at.isoformat(),
            "reference": p.reference,
        }
        for p in session.scalars(
            select(InvoicePayment).where(InvoicePayment.invoice_id == inv.id).order_by(InvoicePayment.id)
        )
    ]
    out["credit_notes"] = [
        credit_note_to_dict(c)
        for c in session.scalars(
            select(CreditNote).where(CreditNote.invoice_id == inv.id).order_by(CreditNote.created_at)
        )
    ]
    return out


def get_credit_note(session: Session, credit_note_id: str) -> dict[str, Any]:
    """One credit note (its lines as issued); NotFound on credit_note_id."""
    note = session.get(CreditNote, credit_note_id)
    if note is None:
        raise NotFound("credit_note_id", f"no credit note {credit_note_id!r}")
    return credit_note_to_dict(note)


def list_credit_notes(session: Session, customer_id: str) -> list[dict[str, Any]]:
    load_customer(session, customer_id)
    rows = session.scalars(
        select(CreditNote)
        .where(CreditNote.customer_id == customer_id)
        .order_by(CreditNote.created_at, CreditNote.number)
    )
    return [credit_note_to_dict(c) for c in rows]


def active_subscription(session: Session, customer_id: str) -> Subscription | None:
    """The customer's live subscription (the most recent one when there are several)."""
    return session.scalars(
        select(Subscription)
        .where(Subscription.customer_id == customer_id, Subscription.status.in_(LIVE))
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
        .limit(1)
    ).first()


def customer_plan(session: Session, customer_id: str) -> tuple[dict[str, Any], Catalog, Plan] | None:
    """(subscription summary, catalog, plan) of the customer's live subscription, for
    entitlement checks; None when the customer has none."""
    load_customer(session, customer_id)
    sub = active_subscription(session, customer_id)
    if sub is None:
        return None
    catalog = catalog_for_version(session, sub.catalog_version_id)
    from engine.sales.subscriptions import subscription_to_dict

    return subscription_to_dict(sub), catalog, catalog.plan(sub.plan_id)


def current_usage(session: Session, customer_id: str, metric: str, now: datetime) -> dict[str, Any]:
    """How much of `metric` the customer used in their current billing period (for access
    checks). Raises NotFound when the customer has no live subscription whose catalog has
    the metric."""
    now = ensure_aware(now, "now")
    load_customer(session, customer_id)
    subs = session.scalars(
        select(Subscription)
        .where(Subscription.customer_id == customer_id, Subscription.status.in_(LIVE))
        .order_by(Subscription.created_at.desc())
    ).all()
    for sub in subs:
        catalog = catalog_for_version(session, sub.catalog_version_id)
        if metric not in catalog.metrics:
            continue
        if sub.period_start and sub.period_end:
            period = Period(sub.period_start, sub.period_end)
        else:  # in trial: from the start to the trial's end
            assert sub.trial_end is not None
            period = Period(sub.start_date, sub.trial_end)
        return _usage_result(session, catalog, customer_id, metric, period, sub.id)
    raise NotFound("metric", f"customer {customer_id!r} has no live subscription that meters {metric!r}")


def usage_in_period(session: Session, customer_id: str, catalog: Catalog, metric: str, period: Period) -> Decimal:
    """A metric's aggregate for any period (e.g. a calendar month an entitlement counts)."""
    if metric not in catalog.metrics:
        raise NotFound("metric", f"unknown metric {metric!r}")
    counted = count_in_sql(session, customer_id, catalog.metrics[metric], period)
    if counted is not None:
        return counted
    from engine.catalog.model import Price

    plan = Plan(
        id="_usage",
        name="",
        interval="month",
        prices=(Price(id=metric, model="per_unit", timing="in_arrears", metric=metric),),
    )
    return usage_for(UsageSource(session), catalog, plan, customer_id, period)[metric].quantity


def _usage_result(
    session: Session, catalog: Catalog, customer_id: str, metric: str, period: Period, sub_id: str
) -> dict[str, Any]:
    q = usage_in_period(session, customer_id, catalog, metric, period)
    return {
        "customer_id": customer_id,
        "metric": metric,
        "quantity": q,
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "subscription_id": sub_id,
    }


def invoice_count(session: Session, subscription_id: str | None = None) -> int:
    stmt = select(func.count()).select_from(Invoice)
    if subscription_id is not None:
        stmt = stmt.where(Invoice.subscription_id == subscription_id)
    return int(session.scalar(stmt) or 0)


def subscription_invoices(session: Session, subscription_id: str) -> list[dict[str, Any]]:
    """Every invoice of a subscription, oldest first, with its lines."""
    rows = session.scalars(
        select(Invoice).where(Invoice.subscription_id == subscription_id).order_by(Invoice.created_at, Invoice.number)
    )
    out = []
    for inv in rows:
        d = invoice_summary(inv)
        d["lines"] = with_credit_lines(session, inv, invoice_lines(session, inv.id, inv.currency))
        out.append(d)
    return out
