"""Usage earned and not invoiced yet, for the books' month close (docs/books.md, *The month
close*): each subscription whose period is still open at a month's end has used what its meters
counted from the period's start to that end, and that usage is invoiced only when the period
closes, after the month. The books accrue it at the month's close (Dr unbilled revenue / Cr
revenue, per plan) and reverse it once it is invoiced.

It is priced by the invoice's own pure function (`engine.pricing.price_period`): the usage of
[period start, month end) on the plan held, in-arrears prices only, with the discounts the period
would get for that usage, so the accrual is what closing the period at the month's end would
invoice for its usage. The minimum commitment is left out: whether it tops up is known only when
the period ends. Each line is rounded once, as the invoice rounds it (the catalog's rounding).

What the period's progressive invoices already billed of it (docs/progressive-billing.md) is
invoiced, not unbilled: each price's accrual is its priced amount less the amount (net of
discount) those invoices billed of that price, read from the period ledger's interim part as the
close's deduction reads it (voided ones reversed there). So the same usage is never both
invoiced early and accrued.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.money import ZERO
from engine.periods import Period
from engine.pricing import LineTotals, price_period
from engine.sales.book_lines import price_type
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.due import at_midnight
from engine.sales.ledger import INTERIM, PeriodHistory, histories
from engine.sales.models import Customer, Subscription
from engine.sales.terms import SubscriptionPeriod, period_terms
from engine.sales.usage_source import BatchUsage, UsageSource, usage_for

# Subscriptions whose open period bills its usage when it closes.
_BILLING = ("active", "past_due")


@dataclass(frozen=True)
class UsageAccrual:
    """One subscription's usage earned by a month's end and not invoiced yet (net of its
    discounts, before tax): the books accrue it on `plan`'s usage revenue."""

    customer_id: str
    subscription_id: str
    plan: str
    currency: str
    amount: Decimal


def unbilled_usage(session: Session, month_end: date) -> list[UsageAccrual]:
    """The usage of every subscription whose current period runs over `month_end` (the first
    day of the next month), from its start to that day, priced as its invoice will price it."""
    subs = session.scalars(
        select(Subscription)
        .where(
            Subscription.status.in_(_BILLING),
            Subscription.period_start < month_end,
            Subscription.period_end > month_end,
        )
        .order_by(Subscription.id)
    ).all()
    source = _preloaded(session, subs, month_end)
    # Every period's ledger in one read (a close reads them all): what was invoiced early.
    early = histories(session, [(s.id, s.period_start) for s in subs if s.period_start is not None])
    out = []
    for sub in subs:
        amount = _usage_until(session, source, sub, month_end, early)
        if amount:
            catalog = catalog_for_version(session, sub.catalog_version_id)
            out.append(UsageAccrual(sub.customer_id, sub.id, sub.plan_id, catalog.currency, amount))
    return out


def _preloaded(session: Session, subs: Sequence[Subscription], until: date) -> UsageSource:
    """Every subscription's events up to `until` in one query (a close reads them all), from
    the earliest period's start; what falls outside (a recurring metric's earlier events) is
    read one by one."""
    source = BatchUsage(session)
    starts = [s.period_start for s in subs if s.period_start is not None]
    if not starts:
        return source
    types = {t for sub in subs for t in _event_types(session, sub)}
    source.preload(sorted({s.customer_id for s in subs}), at_midnight(min(starts)), at_midnight(until), types)
    return source


def _event_types(session: Session, sub: Subscription) -> set[str]:
    catalog = catalog_for_version(session, sub.catalog_version_id)
    return {catalog.metrics[p.metric].event for p in catalog.plan(sub.plan_id).prices if p.metric}


def _usage_until(
    session: Session,
    source: UsageSource,
    sub: Subscription,
    until: date,
    early: Mapping[tuple[str, date], PeriodHistory],
) -> Decimal:
    """What the period's in-arrears usage prices to with the usage counted up to `until`, less
    what its progressive invoices (the interim part of its period's ledger, in `early`) billed
    of each price."""
    assert sub.period_start is not None and sub.period_end is not None  # the query asked for both
    catalog = catalog_for_version(session, sub.catalog_version_id)
    plan = catalog.plan(sub.plan_id)
    period = Period(sub.period_start, sub.period_end)
    usage = usage_for(source, catalog, plan, sub.customer_id, period, until)
    if not usage:
        return ZERO
    customer = session.get_one(Customer, sub.customer_id)
    terms = period_terms(SubscriptionPeriod(catalog, plan, sub, customer, period, sub.cycle), usage=usage, redeem=False)
    bill = price_period(
        catalog,
        plan,
        period,
        quantity=sub.quantity,
        usage=usage,
        timings=("in_arrears",),
        discounts=terms.discounts,
        minimum=False,
    )
    invoiced = early[(sub.id, period.start)].total(INTERIM).lines
    rows = ({"kind": x.kind, "timing": x.timing, "model": x.model, "period_start": period.start} for x in bill.lines)
    return sum(
        (
            x.amount - x.discount - _billed_early(invoiced.get(x.price_id))
            for x, row in zip(bill.lines, rows, strict=True)
            if price_type(row, "cycle") == "usage"
        ),
        ZERO,
    )


def _billed_early(line: LineTotals | None) -> Decimal:
    """What a price's progressive invoices billed of the period, net of its discount."""
    return ZERO if line is None else line.amount - line.discount
