"""Closing periods: the step that moves one subscription past the next thing due.

A step is one of: the trial-will-end notice, the end of a trial (the first period opens and
its in-advance charges are invoiced), or a period boundary (the closed period's in-arrears
usage, minimum true-up and late-usage adjustments, plus the new period's in-advance charges,
on one invoice; or the final invoice when the subscription was set to cancel).
The caller owns the transaction: a step writes its invoice, its lines, its number, the
subscription's new state and its events together, or nothing.

This module is the step itself (`run_step`, `catch_up`, the trial's steps and the first
period's opening); what a step is made of lives beside it, one job a module:

- engine.sales.due: what is due and when (periods' dates, period and late-usage due times);
- engine.sales.usage_source: where usage comes from (the table, a batch's preload);
- engine.sales.pieces: the pieces of a document (opening, prorated credit, closing, deduction);
- engine.sales.issuing: the pieces priced as one document, issued and recorded in the ledger;
- engine.sales.step_events: what a step reports and the properties of its events;
- engine.sales.closing: a period's close, then the end, the pause or the next period;
- engine.sales.late_usage: closed periods billed again for usage that came late.

The names callers imported from here before the split stay importable from here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.closing import close_period
from engine.sales.due import (
    TRIAL_NOTICE,
    OpenPeriod,
    at_midnight,
    billed_until,
    late_due,
    late_due_at,
    late_since,
    open_periods,
    period_due,
    plan_period,
)
from engine.sales.issuing import issue_document, price_pieces
from engine.sales.late_usage import bill_late_usage, late_pieces
from engine.sales.models import CreditNote, Customer, Invoice, Subscription
from engine.sales.pieces import (
    Priced,
    StepContext,
    advance_amount,
    closed_piece,
    closing_piece,
    held_terms,
    opening_piece,
    unused_credit,
    with_deduction,
)
from engine.sales.step_events import StepResult, subscription_event
from engine.sales.terms import SubscriptionPeriod
from engine.sales.usage_source import BatchUsage, UsageSource, usage_for
from engine.store import add_event

__all__ = [
    "TRIAL_NOTICE",
    "BatchUsage",
    "OpenPeriod",
    "Priced",
    "StepContext",
    "StepResult",
    "UsageSource",
    "advance_amount",
    "at_midnight",
    "bill_late_usage",
    "billed_until",
    "catch_up",
    "close_period",
    "closed_piece",
    "closing_piece",
    "held_terms",
    "issue_document",
    "late_due",
    "late_due_at",
    "late_pieces",
    "late_since",
    "open_first_period",
    "open_periods",
    "opening_piece",
    "period_due",
    "plan_period",
    "price_pieces",
    "run_step",
    "subscription_event",
    "unused_credit",
    "usage_for",
    "with_deduction",
]


def open_first_period(
    session: Session,
    sub: Subscription,
    customer: Customer,
    catalog: Catalog,
    plan: Plan,
    now: datetime,
    reason: str,
    ctx: StepContext,
) -> Invoice | CreditNote:
    """The first period opens: its in-advance charges are invoiced now."""
    p0 = plan_period(plan, sub.anchor, 0)
    sub.status = "active"
    sub.period_index = 0
    sub.cycle = 0
    sub.period_start, sub.period_end = p0.start, p0.end
    sub.next_run_at = p0.end_at
    sub.last_billed_at = now
    piece = opening_piece(SubscriptionPeriod(catalog, plan, sub, customer, p0, 0), ctx)
    doc, _ = issue_document(
        session,
        sub,
        customer,
        [Priced(piece, "open", 0, sub.catalog_version_id)],
        reason=reason,
        billing_key=f"period:{p0.start.isoformat()}",
        now=now,
        period=p0,
    )
    return doc


def run_step(
    session: Session, sub: Subscription, customer: Customer, now: datetime, ctx: StepContext
) -> StepResult | None:
    """Do the earliest piece of work due at `now` (one step); None when nothing is due. A
    period's close comes first (its invoice bills the late usage waiting too); late usage
    alone is billed once it is due (`late_due`)."""
    if period_due(sub, now):
        if sub.status == "trialing":
            return _trial_step(session, sub, customer, now, ctx)
        if sub.status == "active" and sub.period_start is not None and sub.period_end is not None:
            return close_period(session, sub, customer, now, ctx)
        sub.next_run_at = None  # nothing left to close: only late usage may still be due
    return bill_late_usage(session, sub, customer, now, ctx) if late_due(sub, now) else None


def _trial_step(session: Session, sub: Subscription, customer: Customer, now: datetime, ctx: StepContext) -> StepResult:
    """A trial's due step: the notice that it will end, then (at its end) the first period."""
    assert sub.trial_end is not None
    end_at = at_midnight(sub.trial_end)
    if not sub.trial_notice_sent and now < end_at:
        sub.trial_notice_sent = True
        sub.next_run_at = end_at
        add_event(session, "subscription.trial_will_end", sub.customer_id, subscription_event(sub), time=now)
        return StepResult(sub.id, "trial_notice", now, events=["subscription.trial_will_end"])
    sub.trial_notice_sent = True
    catalog = catalog_for_version(session, sub.catalog_version_id)
    plan = catalog.plan(sub.plan_id)
    doc = open_first_period(session, sub, customer, catalog, plan, now, "start", ctx)
    add_event(session, "subscription.renewed", sub.customer_id, subscription_event(sub, trial_ended=True), time=now)
    return StepResult(sub.id, "started", now, doc.id, ["subscription.renewed"])


def catch_up(
    session: Session,
    sub: Subscription,
    customer: Customer,
    now: datetime,
    promotions: PromotionSource | None = None,
    limit: int = 10_000,
) -> list[StepResult]:
    """Run every step due for one subscription (used before changing it)."""
    ctx = StepContext(UsageSource(session), promotions)
    out = []
    for _ in range(limit):
        r = run_step(session, sub, customer, now, ctx)
        if r is None:
            break
        out.append(r)
    return out
