"""Pausing a subscription and resuming it (docs/sales.md, "Pausing").

A pause takes effect when the period paid for ends: the customer keeps what they paid for to
its end, and that period's close bills its usage as any close does; then no period opens, so
nothing is invoiced while paused, and the plan grants nothing (a paused subscription is not
live: access as without it). Resuming opens a new period from that day, invoiced as a start
(its in-advance charges now); a resume before the pause took effect just withdraws it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.clock import Clock
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.closing import take_pending
from engine.sales.due import plan_period
from engine.sales.errors import Conflict
from engine.sales.issuing import issue_document
from engine.sales.models import Customer, Subscription
from engine.sales.pieces import Priced, StepContext, opening_piece
from engine.sales.step_events import subscription_event
from engine.sales.subscriptions import prepare_change, subscription_result
from engine.sales.terms import SubscriptionPeriod
from engine.sales.usage_source import UsageSource
from engine.store import add_event


def pause_subscription(
    session: Session, subscription_id: str, *, clock: Clock, promotions: PromotionSource | None = None
) -> dict[str, Any]:
    """Pause at the end of the period paid for (`pause_at_period_end`). Refused (Conflict)
    for a subscription in trial (nothing paid to run to), one set to cancel, or one paused."""
    sub, _customer, now = prepare_change(session, subscription_id, clock, promotions)
    if sub.status != "active":
        raise Conflict("subscription_id", f"subscription {sub.id} is {sub.status}: only an active one can pause")
    if sub.cancel_at_period_end:
        raise Conflict("subscription_id", f"subscription {sub.id} cancels at the period end: reactivate it first")
    if not sub.pause_at_period_end:
        sub.pause_at_period_end = True
        add_event(
            session,
            "subscription.changed",
            sub.customer_id,
            subscription_event(sub, changes={"pause_at_period_end": True}, effective=str(sub.period_end)),
            time=now,
        )
    return subscription_result(sub)


def resume_subscription(
    session: Session, subscription_id: str, *, clock: Clock, promotions: PromotionSource | None = None
) -> dict[str, Any]:
    """Resume: a pause not yet in effect is withdrawn; a paused subscription starts a new
    period today, invoiced now (Conflict when it is neither)."""
    sub, customer, now = prepare_change(session, subscription_id, clock, promotions, paused_ok=True)
    if sub.status == "active" and sub.pause_at_period_end:
        sub.pause_at_period_end = False
        add_event(
            session,
            "subscription.changed",
            sub.customer_id,
            subscription_event(sub, changes={"pause_at_period_end": False}),
            time=now,
        )
        return subscription_result(sub)
    if sub.status != "paused":
        raise Conflict("subscription_id", f"subscription {sub.id} is not paused")
    catalog = catalog_for_version(session, sub.catalog_version_id)
    catalog, changed = take_pending(session, sub, catalog, catalog.plan(sub.plan_id))
    doc = _open_resumed(
        session, sub, customer, catalog, catalog.plan(sub.plan_id), now, StepContext(UsageSource(session), promotions)
    )
    changes = {**changed, "status": {"from": "paused", "to": "active"}}
    add_event(
        session,
        "subscription.changed",
        sub.customer_id,
        subscription_event(sub, changes=changes, effective=str(sub.period_start)),
        time=now,
    )
    return subscription_result(sub, doc)


def _open_resumed(
    session: Session, sub: Subscription, customer: Customer, catalog: Catalog, plan: Plan, now: Any, ctx: StepContext
) -> Any:
    """A new period from today (the anchor moves: periods run from the resume day), counted
    as the next cycle (a repeating coupon counts billed periods, not paused ones)."""
    sub.anchor = now.date()
    sub.interval = plan.interval
    period = plan_period(plan, sub.anchor, 0)
    sub.status, sub.paused_at = "active", None
    sub.period_index = 0
    sub.cycle += 1
    sub.period_start, sub.period_end = period.start, period.end
    sub.next_run_at = period.end_at
    sub.last_billed_at = now
    piece = opening_piece(SubscriptionPeriod(catalog, plan, sub, customer, period, sub.cycle), ctx)
    doc, _ = issue_document(
        session,
        sub,
        customer,
        [Priced(piece, "open", sub.cycle, sub.catalog_version_id)],
        reason="resume",
        billing_key=f"period:{period.start.isoformat()}",
        now=now,
        period=period,
        catalog=catalog,
    )
    return doc
