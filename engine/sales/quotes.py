"""The quote of a subscription's period: what the engine invoices for it, priced at once.

Its plan and catalog version, quantity, coupon and customer as the subscription holds them for
that period, the published pricing rules and the usage recorded so far, priced by the same
function as the invoices (`engine.pricing.whole_period`). For a period without changes in it,
the documents issued for that period add up to this quote, cent for cent.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from engine.periods import Period
from engine.pricing import Document, tax_for, whole_period
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.customers import tax_subject
from engine.sales.cycle import UsageSource, plan_period, usage_for
from engine.sales.errors import SalesError
from engine.sales.ledger import history
from engine.sales.models import Customer, Subscription
from engine.sales.subscriptions import load_subscription
from engine.sales.terms import period_terms


@dataclass(frozen=True)
class SubscriptionQuote:
    subscription_id: str
    document: Document
    mid_period_changes: int  # changes and cancellations within the period (prorated documents)


def quote_subscription(
    session: Session,
    subscription_id: str,
    *,
    period: Period | None = None,
    promotions: PromotionSource | None = None,
) -> SubscriptionQuote:
    """The quote of the subscription's current period (or of `period`, one of its periods)."""
    sub = load_subscription(session, subscription_id, lock=False)
    customer = session.get(Customer, sub.customer_id)
    assert customer is not None
    period = period or _current(session, sub)
    hist = history(session, sub.id, period.start)
    row = hist.rows[-1] if hist.rows else None
    if row is None and (sub.period_start, sub.period_end) != (period.start, period.end):
        raise SalesError("period", f"subscription {sub.id} has no period {period}")
    if row is not None and row.period_end != period.end:
        raise SalesError("period", f"the subscription's period starting {period.start} ends {row.period_end}")
    version_id = row.version_id if row is not None else sub.catalog_version_id
    plan_id = row.plan_id if row is not None else sub.plan_id
    cycle = row.cycle if row is not None else sub.cycle
    catalog = catalog_for_version(session, version_id)
    plan = catalog.plan(plan_id)
    quantity = row.quantity if row is not None else sub.quantity
    usage = usage_for(UsageSource(session), catalog, plan, sub.customer_id, period)
    opening = period_terms(catalog, plan, sub, customer, period, cycle, promotions=promotions, redeem=False)
    closing = period_terms(catalog, plan, sub, customer, period, cycle, usage=usage, promotions=promotions,
                           redeem=False)
    doc = whole_period(
        catalog,
        plan,
        period,
        quantity=quantity,
        usage=usage,
        advance_discounts=opening.discounts,
        arrears_discounts=closing.discounts,
        tax=tax_for(catalog, tax_subject(customer)),
        rules=opening.rules + tuple(r for r in closing.rules if r not in opening.rules),
    )
    return SubscriptionQuote(sub.id, doc, hist.changes)


def _current(session: Session, sub: Subscription) -> Period:
    if sub.period_start is not None and sub.period_end is not None:
        return Period(sub.period_start, sub.period_end)
    catalog = catalog_for_version(session, sub.catalog_version_id)
    return plan_period(catalog.plan(sub.plan_id), sub.anchor, 0)
