"""Monthly recurring revenue over a what-if's months: a month's bills for plans billed
monthly; a longer period's bill spread evenly over the months it covers (an annual plan's
invoice is a twelfth of MRR in each of its twelve months, while the customer stays); a
one-off charge is not recurring.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from engine.simulation.cohort import SimCustomer

ZERO = Decimal(0)
CENT = Decimal("0.01")


class Recurring:
    """One side's MRR per month index."""

    def __init__(self, months: int) -> None:
        self.months = months
        self._mrr = [ZERO] * months

    def add(self, m: int, amount: Decimal) -> None:
        self._mrr[m] += amount

    def spread(self, c: SimCustomer, m: int, amount: Decimal, per: int | None, once: bool) -> None:
        """A bill of month `m` covering `per` months (None: days or weeks, billed within the
        month). Each month's share is rounded to the cent, half up: MRR is a report, not a bill."""
        if once or not amount:
            return
        span = per or 1
        share = amount if span == 1 else (amount / span).quantize(CENT, ROUND_HALF_UP)
        for k in range(m, min(m + span, self.months)):
            if c.active(k):
                self._mrr[k] += share

    def at(self, m: int) -> Decimal:
        return self._mrr[m]
