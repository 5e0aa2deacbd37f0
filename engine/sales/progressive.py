"""Progressive billing: an interim invoice when a period's accrued usage charges reach one of
its plan's thresholds (FORMATS §1 extension `progressive_billing`, docs/progressive-billing.md).

When: on `usage.recorded` (the one event each ingestion batch that stored new usage publishes),
by the sales consumer of the bus, not in the ingestion request: the check prices the period's
usage, which would cost the ingestion hot path a pricing per batch, while the bus runs it just
after the batch commits (a scheduled job would let usage run up between runs, the thing
progressive billing exists to stop). Never twice: the subscription row is locked (SELECT ...
FOR UPDATE; SQLite's writer lock), the level already invoiced is read from the period's
invoices, and each invoice's billing key `progressive:<period start>:<level>` is unique per
subscription, so a redelivered `usage.recorded`, a repeated usage event (which publishes
nothing) or two workers at once issue at most one invoice per level.

What: the period's in-arrears usage priced with every event so far, exactly as its close will
price it (tiers across the whole period, its discounts, the customer's tax, rounded per line),
less what earlier progressive invoices of the period billed, price by price. The close bills
the whole period and deducts them (engine.sales.pieces.with_deduction), so a period's invoices
add up to its quote cent for cent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.money import ZERO
from engine.periods import Period
from engine.pricing import MetricUsage, interim_invoice, tax_for, threshold
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.collectors import emit
from engine.sales.customers import load_customer, tax_subject
from engine.sales.errors import SalesError
from engine.sales.invoice_views import invoice_event_properties
from engine.sales.invoicing import Arrears
from engine.sales.issuing import issue_document
from engine.sales.ledger import INTERIM, history
from engine.sales.models import Invoice, Subscription
from engine.sales.pieces import Priced, StepContext, closing_piece
from engine.sales.terms import SubscriptionPeriod
from engine.sales.usage import recorded_customers
from engine.sales.usage_count import count_in_sql
from engine.sales.usage_source import UsageSource, usage_for

KEY = "progressive"


def handle_usage_recorded(
    session: Session, envelope: Mapping[str, Any], *, promotions: PromotionSource | None = None
) -> list[str]:
    """Bus handler for `usage.recorded`: check the progressive thresholds of the customers it
    names (only their active subscriptions on a plan that declares thresholds). Returns the
    invoices issued."""
    customers = recorded_customers(envelope.get("properties") or {})
    if not customers:
        return []
    now = _time(envelope.get("time"))
    wanted: list[str] = []
    for start in range(0, len(customers), 900):  # under SQLite's bound-parameter limit
        rows = session.execute(
            select(Subscription.id, Subscription.catalog_version_id, Subscription.plan_id).where(
                Subscription.customer_id.in_(customers[start : start + 900]), Subscription.status == "active"
            )
        )
        wanted += [
            sid
            for sid, version, plan in rows
            if catalog_for_version(session, version).plan(plan).progressive_billing is not None
        ]
    issued = []
    for sid in sorted(wanted):  # one lock order for concurrent workers
        invoice = bill_progressive(session, sid, now, promotions=promotions)
        if invoice is not None:
            issued.append(invoice.id)
    return issued


def _time(value: Any) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise SalesError("time", f"the event's time is not an ISO instant: {value!r}") from None
    if when.tzinfo is None:
        raise SalesError("time", "the event's time has no zone")
    return when


def _keys(session: Session, subscription_id: str, period: Period) -> list[tuple[str, str]]:
    """The billing keys and statuses of the period's progressive invoices."""
    prefix = f"{KEY}:{period.start.isoformat()}:"
    rows = session.execute(
        select(Invoice.billing_key, Invoice.status).where(
            Invoice.subscription_id == subscription_id, Invoice.billing_key.startswith(prefix)
        )
    )
    return [(str(k), str(status)) for k, status in rows]


def _level_of(key: str, period: Period) -> int:
    # `progressive:<start>:<level>`, or `...:<level>:<n>` for the n-th issue after a void
    return int(key.removeprefix(f"{KEY}:{period.start.isoformat()}:").split(":")[0])


def invoiced_level(session: Session, subscription_id: str, period: Period) -> int:
    """The highest level the period's progressive invoices were issued for (0: none). A voided
    one invoiced nothing: its level can be reached, and invoiced, again."""
    return max(
        (_level_of(k, period) for k, status in _keys(session, subscription_id, period) if status != "void"), default=0
    )


def billing_key(session: Session, subscription_id: str, period: Period, level: int) -> str:
    """The key of the period's invoice for `level`: unique per subscription, so one level is
    invoiced once; after a void of it, the next issue is `<level>:2`, then `:3`."""
    key = f"{KEY}:{period.start.isoformat()}:{level}"
    issued = sum(1 for k, _ in _keys(session, subscription_id, period) if k == key or k.startswith(f"{key}:"))
    return key if issued == 0 else f"{key}:{issued + 1}"


def usage_so_far(
    src: UsageSource, catalog: Catalog, plan: Plan, customer_id: str, period: Period
) -> dict[str, MetricUsage]:
    """The period's usage as the close aggregates it; `count` metrics counted by the database
    when it can match their filters exactly (engine.sales.usage_count): the check runs on every
    batch, and reading every event of a heavy customer's period each time cost seconds."""
    counted: dict[str, MetricUsage] = {}
    for metric_id in {p.metric for p in plan.prices if p.metric}:
        n = count_in_sql(src.session, customer_id, catalog.metrics[metric_id], period)
        if n is not None:
            counted[metric_id] = MetricUsage(n)
    rest = tuple(p for p in plan.prices if p.metric and p.metric not in counted)
    if not rest:
        return counted
    return {**usage_for(src, catalog, replace(plan, prices=rest), customer_id, period), **counted}


def bill_progressive(
    session: Session, subscription_id: str, now: datetime, *, promotions: PromotionSource | None = None
) -> Invoice | None:
    """Issue the interim invoice a subscription's period calls for now, if any (idempotent)."""
    sub = session.scalars(select(Subscription).where(Subscription.id == subscription_id).with_for_update()).first()
    if sub is None or sub.status != "active" or sub.period_start is None or sub.period_end is None:
        return None
    if sub.next_run_at is not None and sub.next_run_at <= now:
        return None  # the period's close is due: it bills this usage itself
    catalog = catalog_for_version(session, sub.catalog_version_id)
    plan = catalog.plan(sub.plan_id)
    pb = plan.progressive_billing
    if pb is None:
        return None
    period = Period(sub.period_start, sub.period_end)
    customer = load_customer(session, sub.customer_id)
    hist = history(session, sub.id, period.start)
    ctx = StepContext(UsageSource(session), promotions)
    # The usage as the close would price it now, without the minimum (settled at the close).
    usage = usage_so_far(ctx.src, catalog, plan, sub.customer_id, period)
    sp = SubscriptionPeriod(catalog, plan, sub, customer, period, sub.cycle)
    so_far = replace(closing_piece(sp, ctx, hist, redeem=False, usage=usage), minimum=False, held_minimum=ZERO)
    interim = interim_invoice(
        so_far,
        pb,
        invoiced_level(session, sub.id, period),
        hist.total(INTERIM),
        tax_for(catalog, tax_subject(customer)),
    )
    if interim is None:
        return None
    doc = interim.document
    priced = [Priced(doc.pieces[0].piece, "progressive", sub.cycle, sub.catalog_version_id)]
    issued, _ = issue_document(
        session,
        sub,
        customer,
        priced,
        reason=KEY,
        billing_key=billing_key(session, sub.id, period, interim.level),
        now=now,
        period=period,
        arrears=Arrears(period, plan.id, sub.catalog_version_id, sub.quantity),
        catalog=catalog,
        doc=doc,
    )
    assert isinstance(issued, Invoice)  # a positive total is an invoice
    props = invoice_event_properties(issued)
    props.update(
        threshold=catalog.rounder.fmt(threshold(pb, interim.level) or interim.accrued),
        level=interim.level,
        accrued=catalog.rounder.fmt(interim.accrued),
    )
    emit(session, "invoice.progressive", sub.customer_id, props, time=now)
    return issued
