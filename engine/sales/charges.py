"""One-off charges: a rule's `charge` action (late fee, setup fee) becomes an invoice.

Automation publishes `charge.requested` (FORMATS §2 `charge: {amount, description}`); sales
turns it into its own finalized invoice (not a line on the next invoice: a fee is due now,
and a cancelled subscription has no next invoice), priced in the catalog of the customer's
latest subscription (its currency, rounding and taxes) and paid with that subscription's
payment method, so payments collects it like any other invoice through `invoice.finalized`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.model import Plan
from engine.money import to_decimal
from engine.periods import Period
from engine.pricing import Line, price_period, tax_for
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.customers import load_customer, tax_subject
from engine.sales.errors import Conflict, SalesError
from engine.sales.invoice_views import invoice_summary
from engine.sales.invoicing import issue_bill
from engine.sales.models import Invoice, Subscription

ZERO = Decimal(0)


def _billing_key(event_id: str) -> str:
    key = f"charge:{event_id}"
    if len(key) <= 64:
        return key
    return "charge:" + hashlib.sha256(event_id.encode()).hexdigest()[:48]


def _time(value: Any) -> datetime:
    when = value if isinstance(value, datetime) else \
        datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    if when is None or when.tzinfo is None:
        raise SalesError("time", "the charge event has no time with a zone")
    return when


def handle_charge_requested(session: Session, envelope: Mapping[str, Any]) -> dict[str, Any]:
    """Bus handler for `charge.requested` (properties `amount` as a decimal string,
    `description`, optional `currency`): one finalized invoice of that amount plus the
    customer's tax, dated at the event's time. Idempotent by event id: a redelivered event
    returns the invoice it made the first time. Bad input raises SalesError, writing nothing."""
    event_id = envelope.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise SalesError("id", "the charge event has no id")
    props = envelope.get("properties") or {}
    customer = load_customer(session, envelope.get("customer_id"))
    try:
        amount = to_decimal(props.get("amount"), "amount")
    except ValueError as exc:
        raise SalesError("amount", str(exc).removeprefix("amount: ")) from None
    if not amount.is_finite() or amount <= ZERO:
        raise SalesError("amount", f"a charge is a decimal amount above 0, not {props.get('amount')!r}")
    description = str(props.get("description") or "Fee")[:300]
    now = _time(envelope.get("time"))
    key = _billing_key(event_id)
    existing = session.scalars(select(Invoice).where(
        Invoice.customer_id == customer.id, Invoice.subscription_id.is_(None),
        Invoice.billing_key == key)).first()
    if existing is not None:
        return invoice_summary(existing)
    sub = session.scalars(select(Subscription).where(Subscription.customer_id == customer.id)
                          .order_by(Subscription.created_at.desc(), Subscription.id.desc()).limit(1)).first()
    if sub is None:
        raise Conflict("customer_id", f"customer {customer.id} has no subscription whose catalog prices a charge")
    catalog = catalog_for_version(session, sub.catalog_version_id)
    currency = props.get("currency") or catalog.currency
    if currency != catalog.currency:
        raise SalesError("currency", f"the customer is billed in {catalog.currency}, the charge is in {currency}")
    day = now.date()
    period = Period(day, day + timedelta(days=1))
    line = Line(price_id="charge", name=description, model="flat", timing="in_advance",
                quantity=Decimal(1), amount=catalog.rounder(amount), kind="fee", period=period)
    bill = price_period(catalog, Plan(id=sub.plan_id, name=description, interval="once"), period,
                        minimum=False, extra_lines=[line], tax=tax_for(catalog, tax_subject(customer)))
    inv = issue_bill(session, customer=customer, subscription=None, bill=bill, rounder=catalog.rounder,
                     reason="charge", billing_key=key, now=now, version_id=sub.catalog_version_id,
                     period=period, payment_method=sub.payment_method or customer.payment_method)
    assert isinstance(inv, Invoice)  # a positive bill is an invoice, never a credit note
    return invoice_summary(inv)
