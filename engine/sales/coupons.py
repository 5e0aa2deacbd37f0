"""Applying a coupon to a subscription that already runs (an operator's goodwill, a win-back):
it is redeemed at the next period the subscription opens, as a coupon given at sign-up is at
the first, so the period already invoiced is never re-priced."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.pricing import CouponError, check_redeemable
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.coupon_credit import grant_coupon_credit
from engine.sales.errors import Conflict, NotFound, SalesError
from engine.sales.redemptions import coupon_redemption_count
from engine.sales.step_events import subscription_event
from engine.sales.subscriptions import prepare_change, subscription_result
from engine.store import add_event


def apply_coupon(
    session: Session, subscription_id: str, code: str, *, clock: Clock, promotions: PromotionSource | None = None
) -> dict[str, Any]:
    """Give a live subscription the coupon `code` from its next period on. NotFound (coupon)
    for a code its catalog does not have; Conflict (coupon) when it already has one, or the
    coupon is expired, for another plan or used up. Publishes subscription.changed. A coupon
    that grants credit grants it now, once (engine/sales/coupon_credit.py)."""
    if not isinstance(code, str) or not code.strip():
        raise SalesError("coupon", "a coupon code")
    code = code.strip()
    sub, customer, now = prepare_change(session, subscription_id, clock, promotions)
    if sub.coupon_code:
        raise Conflict("coupon", f"subscription {sub.id} already has coupon {sub.coupon_code!r}")
    catalog = catalog_for_version(session, sub.catalog_version_id)
    if code not in catalog.coupons:
        raise NotFound("coupon", f"unknown coupon {code!r} in catalog {catalog.name!r}")
    used = coupon_redemption_count(session, catalog.name, code)
    try:
        check_redeemable(catalog.coupons[code], sub.plan_id, now.date(), int(used or 0))
    except CouponError as exc:
        raise Conflict("coupon", str(exc)) from None
    sub.coupon_code = code
    sub.coupon_first_cycle = sub.cycle + 1  # the next period: this one is billed already
    grant_coupon_credit(session, customer, sub, catalog, catalog.coupons[code], now)  # its credit: now
    add_event(
        session, "subscription.changed", sub.customer_id, subscription_event(sub, changes={"coupon": code}), time=now
    )
    return subscription_result(sub)
