"""Day-based proration of in-advance prices when a plan or quantity changes mid-period."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from engine.catalog.model import Catalog, Plan
from engine.periods import Period
from engine.pricing.bill import Line
from engine.pricing.discounts import Discount
from engine.pricing.document import ADVANCE, Piece, price_document


def prorate_change(
    catalog: Catalog,
    period: Period,
    change_on: date,
    *,
    old_plan: Plan,
    old_quantity: Decimal,
    new_plan: Plan,
    new_quantity: Decimal,
    discounts: tuple[Discount, ...] = (),
) -> list[Line]:
    """Credit the unused part of the old in-advance prices and charge the rest of the period
    at the new ones, both with the same discounts. Each line is rounded once; a credit is the
    exact negation of what the same days would be charged."""
    if not (period.start <= change_on < period.end):
        raise ValueError(f"the change date {change_on} is outside the period {period}")
    pieces = [
        Piece(catalog, old_plan, period, ADVANCE, old_quantity, charge_from=change_on, credit=True,
              discounts=discounts),
        Piece(catalog, new_plan, period, ADVANCE, new_quantity, charge_from=change_on, discounts=discounts),
    ]
    return [line for line in price_document(pieces).lines if line.amount != 0 or line.discount != 0]
