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
    coverage,
    discount_lines,
    minimum_true_up,
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
from engine.pricing.document import (
    ADVANCE,
    ARREARS,
    NOTHING,
    Billed,
    Document,
    LineTotals,
    Piece,
    PricedPiece,
    price_document,
    price_piece,
    whole_period,
)
from engine.pricing.progressive import (
    Interim,
    accrued_usage,
    deduction,
    interim_invoice,
    level_reached,
    level_to_invoice,
    threshold,
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
    "ADVANCE",
    "ARREARS",
    "BOTH_TIMINGS",
    "NOTHING",
    "NO_TAX",
    "AppliedDiscount",
    "Bill",
    "Billed",
    "Charge",
    "CouponError",
    "Discount",
    "Document",
    "Interim",
    "Line",
    "LineTotals",
    "MetricUsage",
    "PeriodPricer",
    "Piece",
    "PricedPiece",
    "TaxDecision",
    "TierUse",
    "UsageEvent",
    "accrued_usage",
    "aggregate",
    "aggregate_all",
    "bill_to_dict",
    "charge",
    "check_redeemable",
    "coupon_applies_in_period",
    "coupon_discount",
    "coverage",
    "deduction",
    "discount_lines",
    "fmt_quantity",
    "interim_invoice",
    "level_reached",
    "level_to_invoice",
    "line_to_dict",
    "matches",
    "minimum_true_up",
    "parse_event",
    "price_document",
    "price_period",
    "price_piece",
    "prorate_change",
    "tax_for",
    "threshold",
    "transform",
    "whole_period",
]
