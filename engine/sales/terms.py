"""Which discounts a service period of a subscription gets: the published pricing rules
(FORMATS §2 `price.calculate`) and the subscription's coupon.

A rule's discount without `periods` applies to every period the rule holds for. One with
`periods: N` is redeemed at the first period it is given, like a coupon, and applies to that
period and the next N-1 (even after the rule stops holding, e.g. a launch offer that ends).
Rules are evaluated as of the period's start (a rule valid then applies), with the customer,
the subscription, the plan, the quantity and the usage known when the piece is priced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.catalog.model import Catalog, Plan
from engine.periods import Period
from engine.pricing import Discount, MetricUsage, coupon_applies_in_period, coupon_discount
from engine.pricing.quoting import PromotionSource
from engine.sales.customers import customer_to_dict
from engine.sales.ledger import discount_from_dict, discount_to_dict
from engine.sales.models import Customer, Subscription


@dataclass(frozen=True)
class SubscriptionPeriod:
    """One service period of a subscription as it is priced: the catalog version and plan it
    is priced on, the subscription and its customer (what the rules see), the period, and
    which of the subscription's billed periods it is (`cycle`: coupons and limited rule
    discounts count them; a paused period does not count)."""

    catalog: Catalog
    plan: Plan
    sub: Subscription
    customer: Customer
    period: Period
    cycle: int


@dataclass(frozen=True)
class Terms:
    """The discounts of one service period, and the rules that gave them (the trace)."""

    discounts: tuple[Discount, ...] = ()
    rules: tuple[dict[str, Any], ...] = ()


def coupon_terms(catalog: Catalog, sub: Subscription, plan_id: str, cycle: int) -> list[Discount]:
    if not sub.coupon_code or sub.coupon_first_cycle is None or cycle < sub.coupon_first_cycle:
        return []  # a coupon applied mid-way is redeemed at the next period, not before
    coupon = catalog.coupons.get(sub.coupon_code)
    if coupon is None or not coupon.discounts or (coupon.applies_to and plan_id not in coupon.applies_to):
        return []
    return [coupon_discount(coupon)] if coupon_applies_in_period(coupon, cycle - sub.coupon_first_cycle) else []


def subscription_context(sub: Subscription, cycle: int) -> dict[str, Any]:
    return {
        "id": sub.id,
        "plan": sub.plan_id,
        "quantity": sub.quantity,
        "status": sub.status,
        "cycle": cycle,
        "coupon": sub.coupon_code,
        "start_date": sub.start_date,
    }


def _limited_discounts(sub: Subscription, found: list[Discount], cycle: int, redeem: bool) -> list[Discount]:
    """The rule discounts for a number of periods that apply in `cycle`: those redeemed
    before, and (`redeem`) those found now for the first time, recorded on the subscription
    with the cycle they start in."""
    redeemed = dict(sub.promotions or {})
    for d in found:
        if redeem and d.periods is not None and d.source not in redeemed:
            redeemed[d.source] = {"first_cycle": cycle, "discount": discount_to_dict(d)}
    if redeemed != (sub.promotions or {}):
        sub.promotions = redeemed  # a new dict: the JSON column sees the change
    out = []
    for entry in redeemed.values():
        first, d = int(entry["first_cycle"]), discount_from_dict(entry["discount"])
        if first <= cycle < first + int(d.periods or 0):
            out.append(d)
    return out


def period_terms(
    sp: SubscriptionPeriod,
    *,
    usage: Mapping[str, MetricUsage] | None = None,
    promotions: PromotionSource | None = None,
    redeem: bool = True,
    quantity: Decimal | None = None,
) -> Terms:
    """The discounts of the period for its plan at `quantity` (default: the subscription's):
    pricing rules first, then the coupon. `redeem` records a rule discount with `periods` on
    its first use."""
    sub, plan, cycle = sp.sub, sp.plan, sp.cycle
    found: list[Discount] = []
    trace: list[dict[str, Any]] = []
    if promotions is not None:
        q = sub.quantity if quantity is None else quantity
        found, trace = promotions(
            catalog=sp.catalog,
            plan=plan,
            customer=customer_to_dict(sp.customer),
            usage=usage or {},
            period=sp.period,
            quantity=q,
            subscription={**subscription_context(sub, cycle), "plan": plan.id, "quantity": q},
        )
    out = [d for d in found if d.periods is None] + _limited_discounts(sub, found, cycle, redeem)
    out += coupon_terms(sp.catalog, sub, plan.id, cycle)
    return Terms(tuple(out), tuple(trace))
