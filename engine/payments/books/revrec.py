"""Revenue recognition schedules, pure: how much of an invoice line is earned in each month.

- a fee for a service period (subscription, in advance or not) is earned daily, straight-line,
  over its period [start, end);
- usage is earned over the period it was used in (spread by day: the line does not say on which
  day each unit was used);
- a one-time fee is earned at delivery (the day the invoice is issued);
- a proration credit is a negative line over its period: it reverses, day for day, the part of
  the fee it replaces;
- a credit note on an invoice reverses the invoice's schedule in proportion, what was already
  earned in the month of the credit note, the rest in the months it was still to be earned in.

Rounding is deliberate and happens once per month boundary: each month gets the cumulative
amount up to its end, rounded half-even to the currency's minor unit, less what the months
before got. So a schedule always adds up to the line exactly, and no month is off by more than
one minor unit from the exact daily figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from engine.money import quantum

ZERO = Decimal(0)


def month_of(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)


@dataclass(frozen=True)
class ScheduleLine:
    """One invoice line as the schedule needs it."""

    amount: Decimal  # net of discount, before tax; negative for a credit
    currency: str
    price_type: str  # subscription | usage | one_time
    delivered: date  # the day it was invoiced
    start: date | None = None
    end: date | None = None  # exclusive


def _month_days(start: date, end: date) -> list[tuple[date, int]]:
    out = []
    month = date(start.year, start.month, 1)
    while month < end:
        following = next_month(month)
        out.append((month, ((following if following < end else end) - (month if month > start else start)).days))
        month = following
    return out


def _spread(amount: Decimal, currency: str, weights: Sequence[tuple[date, int]]) -> list[tuple[date, Decimal]]:
    """`amount` over months in proportion to their weights, cumulative rounding (see above)."""
    total = sum(w for _, w in weights)
    q = quantum(currency)
    out, done, upto = [], ZERO, 0
    for month, weight in weights:
        upto += weight
        cumulative = (amount * upto / total).quantize(q, ROUND_HALF_EVEN)
        out.append((month, cumulative - done))
        done = cumulative
    return out


def line_schedule(line: ScheduleLine) -> list[tuple[date, Decimal]]:
    """(first day of month, amount earned that month), in month order; adds up to the line."""
    if line.price_type == "one_time" or line.start is None or line.end is None or line.end <= line.start:
        return [(month_of(line.delivered), line.amount)]
    return _spread(line.amount, line.currency, _month_days(line.start, line.end))


def credit_schedule(amount: Decimal, currency: str, invoice_rows: Iterable[tuple[date, Decimal]],
                    issued: date) -> list[tuple[date, Decimal]]:
    """A credit of `amount` (positive: what is taken back) on an invoice whose schedule is
    `invoice_rows`: negative rows in proportion to the invoice's, the months before the credit
    note's own month folded into it (revenue already earned is reversed when it is credited)."""
    by_month: dict[date, Decimal] = {}
    for month, value in invoice_rows:
        key = max(month, month_of(issued))
        by_month[key] = by_month.get(key, ZERO) + value
    months = sorted(by_month)
    total = sum(by_month.values(), ZERO)
    if not months or total == 0:
        return [(month_of(issued), -amount)]
    # Weights in minor units, so _spread's integer proportion applies to money too.
    q = quantum(currency)
    weights = [(m, int(by_month[m] / q)) for m in months]
    if sum(w for _, w in weights) == 0:
        return [(month_of(issued), -amount)]
    return [(m, -v) for m, v in _spread(amount, currency, weights)]
