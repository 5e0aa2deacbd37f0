"""A period's close: its usage and minimum billed (with late usage waiting), then the
subscription ends (set to cancel), pauses (set to pause) or renews: what waited for the
period end is taken (a downgrade, a catalog migration: `take_pending`), the next period
opens and its in-advance charges go on the same invoice. Moved from engine.sales.cycle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.periods import Period
from engine.pricing import fmt_quantity
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.due import plan_period
from engine.sales.invoicing import Arrears
from engine.sales.issuing import issue_document
from engine.sales.late_usage import late_pieces
from engine.sales.models import CreditNote, Customer, Invoice, Subscription
from engine.sales.pieces import Priced, StepContext, closing_piece, opening_piece, with_deduction
from engine.sales.step_events import StepResult, subscription_event
from engine.sales.terms import SubscriptionPeriod
from engine.store import add_event


def take_pending(
    session: Session, sub: Subscription, catalog: Catalog, plan: Plan
) -> tuple[Catalog, dict[str, object]]:
    """Apply what was waiting for the period end (a downgrade, a catalog migration)."""
    changed: dict[str, object] = {}
    for key, attr, pending, shown in _PENDING:
        value = getattr(sub, pending)
        if value is not None and value != getattr(sub, attr):
            changed[key] = {"from": shown(getattr(sub, attr)), "to": shown(value)}
            setattr(sub, attr, value)
        setattr(sub, pending, None)
    if "catalog_version_id" in changed:
        catalog = catalog_for_version(session, sub.catalog_version_id)
    return catalog, changed


def _as_is(value: object) -> object:
    return value


# What may wait for the period end: (key in the change reported, column, pending column, how
# the change shows the values), in the order the change lists them.
_PENDING: tuple[tuple[str, str, str, Callable[[Any], object]], ...] = (
    ("catalog_version_id", "catalog_version_id", "pending_version_id", _as_is),
    ("plan", "plan_id", "pending_plan_id", _as_is),
    ("quantity", "quantity", "pending_quantity", fmt_quantity),
)


def close_period(
    session: Session, sub: Subscription, customer: Customer, now: datetime, ctx: StepContext
) -> StepResult:
    assert sub.period_start is not None and sub.period_end is not None
    catalog = catalog_for_version(session, sub.catalog_version_id)
    plan = catalog.plan(sub.plan_id)
    closed = Period(sub.period_start, sub.period_end)
    hist = ctx.history(session, sub.id, closed.start)
    closing = with_deduction(
        hist,
        Priced(
            closing_piece(SubscriptionPeriod(catalog, plan, sub, customer, closed, sub.cycle), ctx, hist),
            "close",
            sub.cycle,
            sub.catalog_version_id,
        ),
    )
    closing += late_pieces(session, ctx, catalog, sub, closed.start)
    arrears = Arrears(closed, plan.id, sub.catalog_version_id, sub.quantity)
    sub.last_billed_at = now
    if sub.cancel_at_period_end:
        doc = _bill_closed(session, sub, customer, closing, "final", closed, arrears, catalog, now)
        sub.status = "canceled"
        sub.ended_at = closed.end_at
        sub.next_run_at = None
        add_event(session, "subscription.canceled", sub.customer_id, subscription_event(sub, ended=True), time=now)
        return StepResult(sub.id, "ended", now, doc.id, ["subscription.canceled"])
    if sub.pause_at_period_end:
        return _pause_at_close(session, sub, customer, closing, closed, arrears, catalog, now)

    new_catalog, changed = take_pending(session, sub, catalog, plan)
    new_plan = new_catalog.plan(sub.plan_id)
    if (new_plan.interval, new_plan.interval_count) != (plan.interval, plan.interval_count):
        sub.anchor = closed.end
        index = 0
    else:
        index = sub.period_index + 1
    sub.interval = new_plan.interval
    new_period = plan_period(new_plan, sub.anchor, index)
    sub.period_index = index
    sub.cycle += 1
    sub.period_start, sub.period_end = new_period.start, new_period.end
    sub.next_run_at = new_period.end_at
    opening = opening_piece(SubscriptionPeriod(new_catalog, new_plan, sub, customer, new_period, sub.cycle), ctx)
    doc, _ = issue_document(
        session,
        sub,
        customer,
        [Priced(opening, "open", sub.cycle, sub.catalog_version_id), *closing],
        reason="cycle",
        billing_key=f"period:{new_period.start.isoformat()}",
        now=now,
        period=new_period,
        arrears=arrears,
        catalog=new_catalog,
    )
    events = ["subscription.renewed"]
    if changed:
        add_event(
            session,
            "subscription.changed",
            sub.customer_id,
            subscription_event(sub, changes=changed, effective=str(new_period.start)),
            time=now,
        )
        events.append("subscription.changed")
    add_event(session, "subscription.renewed", sub.customer_id, subscription_event(sub), time=now)
    return StepResult(sub.id, "renewed", now, doc.id, events)


def _pause_at_close(
    session: Session,
    sub: Subscription,
    customer: Customer,
    closing: list[Priced],
    closed: Period,
    arrears: Arrears,
    catalog: Catalog,
    now: datetime,
) -> StepResult:
    """The period paid for is over and the pause takes effect: its usage is billed as at any
    close, and no new period opens (nothing is invoiced until `resume_subscription`)."""
    doc = _bill_closed(session, sub, customer, closing, "pause", closed, arrears, catalog, now)
    sub.status = "paused"
    sub.pause_at_period_end = False
    sub.paused_at = closed.end_at
    sub.next_run_at = None
    add_event(
        session,
        "subscription.changed",
        sub.customer_id,
        subscription_event(sub, changes={"status": {"from": "active", "to": "paused"}}, effective=str(closed.end)),
        time=now,
    )
    return StepResult(sub.id, "paused", now, doc.id, ["subscription.changed"])


def _bill_closed(
    session: Session,
    sub: Subscription,
    customer: Customer,
    closing: list[Priced],
    reason: str,
    closed: Period,
    arrears: Arrears,
    catalog: Catalog,
    now: datetime,
) -> Invoice | CreditNote:
    """The last document of a period after which none opens (the subscription ends or
    pauses): its usage and minimum, keyed by `reason` and the period's end."""
    doc, _ = issue_document(
        session,
        sub,
        customer,
        closing,
        reason=reason,
        billing_key=f"{reason}:{closed.end.isoformat()}",
        now=now,
        period=closed,
        arrears=arrears,
        catalog=catalog,
    )
    return doc
