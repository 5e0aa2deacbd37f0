"""Day-based proration of in-advance prices when a plan or quantity changes mid-period."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from engine.catalog.model import Catalog, Plan
from engine.money import ZERO
from engine.periods import Period
from engine.pricing.bill import Line
from engine.pricing.charges import charge


def _advance_amount(plan: Plan, quantity: Decimal) -> list[tuple[str, str, Decimal]]:
    return [(p.id, p.name, charge(p, quantity).amount) for p in plan.prices if p.timing == "in_advance" and p.prorate]


def prorate_change(
    catalog: Catalog,
    period: Period,
    change_on: date,
    *,
    old_plan: Plan,
    old_quantity: Decimal,
    new_plan: Plan,
    new_quantity: Decimal,
) -> list[Line]:
    """Credit the unused part of the old in-advance prices and charge the rest of the period
    at the new ones. Each line is rounded once; a credit is a negative line."""
    if not (period.start <= change_on < period.end):
        raise ValueError(f"the change date {change_on} is outside the period {period}")
    remaining = (period.end - change_on).days
    days = period.days
    rounder = catalog.rounder
    lines: list[Line] = []
    for pid, name, amount in _advance_amount(old_plan, old_quantity):
        credit = rounder(-amount * remaining / days)
        if credit != ZERO:
            lines.append(
                Line(
                    pid,
                    f"Unused {name} ({remaining}/{days} days)",
                    "proration",
                    "in_advance",
                    old_quantity,
                    credit,
                    kind="proration",
                    period=period,
                    note=f"credit:{old_plan.id}",
                )
            )
    for pid, name, amount in _advance_amount(new_plan, new_quantity):
        due = rounder(amount * remaining / days)
        if due != ZERO:
            lines.append(
                Line(
                    pid,
                    f"Remaining {name} ({remaining}/{days} days)",
                    "proration",
                    "in_advance",
                    new_quantity,
                    due,
                    kind="proration",
                    period=period,
                    note=f"charge:{new_plan.id}",
                )
            )
    return lines
