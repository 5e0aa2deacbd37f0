"""An operator's audited changes to a customer's subscription (the console's customer card):
the same sales operations the HTTP API calls (POST /v1/subscriptions/{id}/change, /coupon,
/cancel, /pause, /resume), each allowed by the user's `operate` permission and recorded in the
audit with who and why. Here, in the operator layer, because they join sales to users' audit:
the console's modules import one subsystem at most (docs/architecture.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine import sales
from engine.clock import Clock
from engine.pricing.quoting import PromotionSource
from engine.users import UserError, record_audit, require


def change_plan(session: Session, user: dict[str, Any], subscription_id: str, plan: str, why: str, *,
                clock: Clock, promotions: PromotionSource | None = None) -> dict[str, Any]:
    """An upgrade now (prorated), a downgrade at the period end: as the API's change."""
    allowed(user, why)
    sub = sales.change_subscription(session, subscription_id, clock=clock, plan=plan, promotions=promotions)
    record_audit(session, user, "change_plan", "subscription", subscription_id, why,
                 details={"customer": sub["customer_id"], "plan": plan}, clock=clock)
    return sub


def apply_coupon(session: Session, user: dict[str, Any], subscription_id: str, coupon: str, why: str, *,
                 clock: Clock, promotions: PromotionSource | None = None) -> dict[str, Any]:
    allowed(user, why)
    sub = sales.apply_coupon(session, subscription_id, coupon, clock=clock, promotions=promotions)
    record_audit(session, user, "apply_coupon", "subscription", subscription_id, why,
                 details={"customer": sub["customer_id"], "coupon": coupon}, clock=clock)
    return sub


def cancel(session: Session, user: dict[str, Any], subscription_id: str, at: str, why: str, *,
           clock: Clock, promotions: PromotionSource | None = None) -> dict[str, Any]:
    """Cancel `now` (usage invoiced, unused time credited) or at the `period_end`."""
    allowed(user, why)
    sub = sales.cancel_subscription(session, subscription_id, clock=clock, at=at, promotions=promotions)
    record_audit(session, user, "cancel", "subscription", subscription_id, why,
                 details={"customer": sub["customer_id"], "at": at}, clock=clock)
    return sub


def pause(session: Session, user: dict[str, Any], subscription_id: str, why: str, *,
          clock: Clock, promotions: PromotionSource | None = None) -> dict[str, Any]:
    """Pause at the end of the period paid for, as `POST /v1/subscriptions/{id}/pause`."""
    allowed(user, why)
    sub = sales.pause_subscription(session, subscription_id, clock=clock, promotions=promotions)
    record_audit(session, user, "pause", "subscription", subscription_id, why,
                 details={"customer": sub["customer_id"], "at": sub["current_period"]["end"]}, clock=clock)
    return sub


def resume(session: Session, user: dict[str, Any], subscription_id: str, why: str, *,
           clock: Clock, promotions: PromotionSource | None = None) -> dict[str, Any]:
    """Resume (a new period from today, invoiced now) or withdraw a pause not yet in effect,
    as `POST /v1/subscriptions/{id}/resume`."""
    allowed(user, why)
    sub = sales.resume_subscription(session, subscription_id, clock=clock, promotions=promotions)
    record_audit(session, user, "resume", "subscription", subscription_id, why,
                 details={"customer": sub["customer_id"]}, clock=clock)
    return sub


def allowed(user: dict[str, Any], why: str) -> None:
    """Checked before the engine changes anything: the role, and a reason for the audit."""
    require(user, "operate")
    if not why or not why.strip():
        raise UserError("why", "say why: the change is recorded in the audit")
