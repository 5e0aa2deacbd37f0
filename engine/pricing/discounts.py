"""Discounts (from coupons and pricing rules) and how they reduce a bill's lines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from engine.catalog.model import Coupon
from engine.money import HUNDRED, ZERO


@dataclass(frozen=True, slots=True)
class Discount:
    """A percent or a fixed amount off some prices (all when `prices` is empty)."""

    percent: Decimal | None = None
    amount: Decimal | None = None
    prices: tuple[str, ...] = ()
    periods: int | None = None  # how many periods it lasts; the caller decides if it applies
    reason: str = ""
    source: str = ""  # "coupon:WELCOME20" or "rule:promotions/edu-50"

    def __post_init__(self) -> None:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("a discount is either a percent or an amount")
        if self.percent is not None and not (ZERO <= self.percent <= HUNDRED):
            raise ValueError(f"a discount percent is between 0 and 100, not {self.percent}")
        if self.amount is not None and self.amount < ZERO:
            raise ValueError(f"a discount amount cannot be negative ({self.amount})")


class CouponError(ValueError):
    """A coupon cannot be redeemed; the message says why."""


def check_redeemable(coupon: Coupon, plan_id: str, on: date, redemptions: int = 0) -> None:
    """Raise CouponError if the coupon cannot be redeemed for this plan on this day."""
    if coupon.expires is not None and on > coupon.expires:
        raise CouponError(f"coupon {coupon.code} expired on {coupon.expires.isoformat()}")
    if coupon.applies_to and plan_id not in coupon.applies_to:
        raise CouponError(f"coupon {coupon.code} applies to {', '.join(coupon.applies_to)}, not {plan_id}")
    if coupon.max_redemptions is not None and redemptions >= coupon.max_redemptions:
        raise CouponError(f"coupon {coupon.code} reached its {coupon.max_redemptions} redemptions")


def coupon_applies_in_period(coupon: Coupon, period_index: int) -> bool:
    """period_index 0 is the first billed period after redemption."""
    if coupon.duration == "once":
        return period_index == 0
    if coupon.duration == "repeating":
        return period_index < (coupon.periods or 0)
    return True


def coupon_discount(coupon: Coupon) -> Discount:
    return Discount(
        percent=coupon.percent_off,
        amount=coupon.amount_off,
        reason=coupon.name or coupon.code,
        source=f"coupon:{coupon.code}",
    )
