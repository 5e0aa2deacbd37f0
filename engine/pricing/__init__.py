"""Pure pricing: usage aggregation, every price model, bills, proration, coupons and taxes.

No I/O here, so the quote command, the simulator and live invoicing run the same code.

    bill = price_period(catalog, catalog.plan("pro"), period, quantity=Decimal(3),
                        usage={"api_calls": MetricUsage(Decimal(15000))})
"""

from engine.pricing.bill import (
    BOTH_TIMINGS,
    AppliedDiscount,
    Bill,
    Line,
    PeriodPricer,
    apply_discounts,
    coverage,
    minimum_true_up,
    price_line,
    price_period,
)
from engine.pricing.charges import Charge, TierUse, charge, transform
from engine.pricing.discounts import (
    CouponError,
    Discount,
    check_redeemable,
    coupon_applies_in_period,
    coupon_discount,
)
from engine.pricing.proration import prorate_change
from engine.pricing.quote import bill_to_dict, fmt_quantity, line_to_dict
from engine.pricing.taxes import NO_TAX, TaxDecision, tax_for
from engine.pricing.usage import (
    MetricUsage,
    UsageEvent,
    aggregate,
    aggregate_all,
    matches,
    parse_event,
)

__all__ = [
    "BOTH_TIMINGS",
    "NO_TAX",
    "AppliedDiscount",
    "Bill",
    "Charge",
    "CouponError",
    "Discount",
    "Line",
    "MetricUsage",
    "PeriodPricer",
    "TaxDecision",
    "TierUse",
    "UsageEvent",
    "aggregate",
    "aggregate_all",
    "apply_discounts",
    "bill_to_dict",
    "charge",
    "check_redeemable",
    "coupon_applies_in_period",
    "coupon_discount",
    "coverage",
    "fmt_quantity",
    "line_to_dict",
    "matches",
    "minimum_true_up",
    "parse_event",
    "price_line",
    "price_period",
    "prorate_change",
    "tax_for",
    "transform",
]
