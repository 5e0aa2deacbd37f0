"""A plan priced for one period: lines rounded once each, discounts, minimum commitment, tax.

`price_period` is the one function the quote, the simulator and live invoicing all call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date
from decimal import Decimal
from typing import Any

from engine.catalog.model import Catalog, Plan, Price
from engine.money import HUNDRED, ZERO, Rounder
from engine.periods import Period
from engine.pricing.charges import TierUse, charge
from engine.pricing.discounts import Discount
from engine.pricing.taxes import NO_TAX, TaxDecision
from engine.pricing.usage import MetricUsage

ONE = Decimal(1)
BOTH_TIMINGS = frozenset({"in_advance", "in_arrears"})
_NO_USAGE = MetricUsage(ZERO)


@dataclass(frozen=True, slots=True)
class Line:
    price_id: str
    name: str
    model: str
    timing: str
    quantity: Decimal
    amount: Decimal  # rounded to the currency's minor unit
    tiers: tuple[TierUse, ...] = ()
    kind: str = "charge"  # charge | minimum_commitment | proration | adjustment | fee
    period: Period | None = None
    detail: tuple[tuple[str, Decimal], ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True)
class AppliedDiscount:
    source: str
    reason: str
    amount: Decimal  # rounded, positive


@dataclass(frozen=True, slots=True)
class Bill:
    plan: str
    currency: str
    period: Period
    lines: tuple[Line, ...]
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal
    discounts: tuple[AppliedDiscount, ...] = ()
    tax_decision: TaxDecision = NO_TAX
    rules: tuple[Mapping[str, Any], ...] = dc_field(default=())


def coverage(period: Period, start: date | None, end: date | None) -> tuple[int, int]:
    """(days covered, days in period) for the part of `period` within [start, end)."""
    lo = period.start if start is None or start < period.start else start
    hi = period.end if end is None or end > period.end else end
    return max((hi - lo).days, 0), period.days


def price_line(
    price: Price,
    rounder: Rounder,
    *,
    quantity: Decimal,
    usage: Mapping[str, MetricUsage],
    period: Period | None = None,
    covered: tuple[int, int] | None = None,
    note: str = "",
) -> Line:
    """One price for one period. `covered` = (days, period days) prorates an in-advance price."""
    if price.metric is None:
        result = charge(price, quantity)
    else:
        u = usage.get(price.metric, _NO_USAGE)
        result = charge(price, u.quantity, u.transactions)
    amount = result.amount
    if covered is not None and covered[0] != covered[1]:
        amount = amount * covered[0] / covered[1] if price.prorate else amount
        if covered[0] == 0:
            amount = ZERO
    return Line(
        price.id,
        price.name,
        price.model,
        price.timing,
        result.quantity,
        rounder(amount),
        result.tiers,
        "charge",
        period,
        result.detail,
        note,
    )


def minimum_true_up(
    plan: Plan, rounder: Rounder, charged: Decimal, covered: tuple[int, int] | None = None, period: Period | None = None
) -> Line | None:
    """The shortfall below the plan's minimum commitment for a period, as a line (or None)."""
    minimum = plan.minimum_amount
    if minimum <= ZERO:
        return None
    if covered is not None and covered[0] != covered[1]:
        minimum = minimum * covered[0] / covered[1]
    shortfall = rounder(minimum) - charged
    if shortfall <= ZERO:
        return None
    return Line(
        "minimum_commitment",
        "Minimum commitment true-up",
        "minimum",
        "in_arrears",
        ONE,
        shortfall,
        kind="minimum_commitment",
        period=period,
    )


def apply_discounts(
    lines: Sequence[Line], discounts: Sequence[Discount], rounder: Rounder
) -> tuple[Decimal, tuple[AppliedDiscount, ...]]:
    """Apply discounts in order, each on what the previous ones left of the lines it targets.

    Each discount is rounded once; together they never exceed the positive lines."""
    remaining = [line.amount if line.amount > ZERO else ZERO for line in lines]
    applied = []
    total = ZERO
    for d in discounts:
        targets = [
            i for i, line in enumerate(lines) if (not d.prices or line.price_id in d.prices) and remaining[i] > ZERO
        ]
        base = sum((remaining[i] for i in targets), ZERO)
        if base <= ZERO:
            continue
        if d.percent is not None:
            off = base * d.percent / HUNDRED
        else:
            off = min(d.amount or ZERO, base)
        off = rounder(off)
        if off > base:
            off = base
        # Spread over the targeted lines in proportion, so a later discount on one price
        # sees what this one left of it.
        for i in targets:
            remaining[i] -= off * remaining[i] / base
        applied.append(AppliedDiscount(d.source, d.reason, off))
        total += off
    return total, tuple(applied)


def price_period(
    catalog: Catalog,
    plan: Plan,
    period: Period,
    *,
    quantity: Decimal = ONE,
    usage: Mapping[str, MetricUsage] | None = None,
    timings: Collection[str] = BOTH_TIMINGS,
    charge_from: date | None = None,
    charge_until: date | None = None,
    trial_end: date | None = None,
    discounts: Sequence[Discount] = (),
    tax: TaxDecision = NO_TAX,
    minimum: bool = True,
    extra_lines: Sequence[Line] = (),
    rules: Sequence[Mapping[str, Any]] = (),
) -> Bill:
    """Price `plan` for `period`.

    - in-advance prices cover [charge_from, charge_until) of the period, prorated by days;
      inside a trial (before `trial_end`) they are not charged;
    - in-arrears prices price the metric usage of the period;
    - the minimum commitment tops up the period's charges;
    - discounts apply in order, then tax on what is left. The total is the sum of rounded
      figures, so it always equals what the lines say.
    """
    if quantity < ZERO:
        raise ValueError(f"quantity {quantity} is negative")
    rounder = catalog.rounder
    usage = usage or {}
    start = charge_from
    if trial_end is not None and (start is None or trial_end > start):
        start = trial_end
    covered = coverage(period, start, charge_until) if (start or charge_until) else None
    in_trial = trial_end is not None and trial_end > period.start
    lines: list[Line] = []
    for price in plan.prices:
        if price.timing not in timings:
            continue
        if price.timing == "in_advance":
            note = "trial" if in_trial and covered is not None and covered[0] == 0 else ""
            lines.append(
                price_line(price, rounder, quantity=quantity, usage=usage, period=period, covered=covered, note=note)
            )
        else:
            lines.append(price_line(price, rounder, quantity=quantity, usage=usage, period=period))
    if minimum and plan.minimum_amount > ZERO and timings == BOTH_TIMINGS:
        true_up = minimum_true_up(plan, rounder, sum((x.amount for x in lines), ZERO), covered, period)
        if true_up is not None:
            lines.append(true_up)
    lines.extend(extra_lines)
    subtotal = sum((x.amount for x in lines), ZERO)
    if discounts:
        discount, applied = apply_discounts(lines, discounts, rounder)
    else:
        discount, applied = ZERO, ()
    taxable = subtotal - discount
    tax_amount = rounder(taxable * tax.rate / HUNDRED) if tax.rate else ZERO
    return Bill(
        plan.id,
        catalog.currency,
        period,
        tuple(lines),
        subtotal,
        discount,
        tax_amount,
        taxable + tax_amount,
        applied,
        tax,
        tuple(rules),
    )
