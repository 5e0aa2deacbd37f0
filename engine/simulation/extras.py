"""What a what-if run works out beside revenue, on each catalog: the prepaying customers'
wallets (engine.simulation.prepaid) and the progressive invoices a plan's thresholds issue
(engine.simulation.early). Both read the bills the run priced, customer-month by
customer-month, so they cost nothing when the what-if asks for neither."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from dateutil.relativedelta import relativedelta

from engine.catalog.model import Catalog, Plan
from engine.periods import Period, period_boundary
from engine.pricing import MetricUsage
from engine.simulation.cohort import SimCustomer
from engine.simulation.early import EarlyFigures, reaches_a_level, replay
from engine.simulation.prepaid import Prepaid, Wallets


class Side(Protocol):
    """What the run's pricing of one catalog offers (engine.simulation.side.SidePricer)."""

    catalog: Catalog
    start: date

    def month(self, m: int) -> Period: ...
    def periods(self, plan: Plan, joined: int, m: int) -> tuple[tuple[Period, Decimal], ...]: ...
    def scaled(self, usage: dict[str, MetricUsage], scale: Decimal) -> dict[str, MetricUsage]: ...
    def bill(self, plan: Plan, period: Period) -> Any: ...


def months_per_period(plan: Plan) -> int | None:
    if plan.interval == "month":
        return plan.interval_count
    if plan.interval == "year":
        return 12 * plan.interval_count
    return None


def period_end(side: Side, plan: Plan, c: SimCustomer, day: date) -> date | None:
    """The end of the customer's billing period in effect on `day` (None: a one-time plan)."""
    if plan.interval == "once":
        return None
    anchor = side.start + relativedelta(months=c.joined)
    per = months_per_period(plan)
    if per is not None:
        n = ((day.year - anchor.year) * 12 + day.month - anchor.month) // per
    else:
        n = 0
        while period_boundary(anchor, plan.interval, n + 1, plan.interval_count) <= day:
            n += 1
    return period_boundary(anchor, plan.interval, n + 1, plan.interval_count)


class _OneSide:
    def __init__(self, side: Side, prepaid: Prepaid | None) -> None:
        self.side = side
        self.wallets = Wallets(side.catalog, prepaid) if prepaid is not None else None
        self.early = EarlyFigures()

    def customer_month(self, i: int, c: SimCustomer, m: int, plan: Plan, usage: dict[str, MetricUsage],
                       billed: Decimal, prepays: bool) -> None:
        if plan.progressive_billing is not None:
            self._progressive(i, c, m, plan, usage)
        if prepays and self.wallets is not None:
            month = self.side.month(m)
            if not self.wallets.holds(i):
                self.wallets.join(i, month.start_at, period_end(self.side, plan, c, month.start))
            asked = self.wallets.asked(billed, usage)
            self.wallets.pay(i, asked, month.end_at, period_end(self.side, plan, c, month.end))

    def _progressive(self, i: int, c: SimCustomer, m: int, plan: Plan, usage: dict[str, MetricUsage]) -> None:
        side = self.side
        for period, scale in side.periods(plan, c.joined, m):
            u = side.scaled(usage, scale)
            if reaches_a_level(plan, side.bill(plan, period)(c.quantity, u).lines):
                self.early.add(i, replay(side.catalog, plan, period, c.quantity, u, side.scaled))


class Extras:
    """The prepaid and progressive figures of both catalogs over a run."""

    def __init__(self, bside: Side, dside: Side, customers: Sequence[SimCustomer], prepaid: Prepaid | None) -> None:
        self.prepaid = prepaid
        self.sides = (_OneSide(bside, prepaid), _OneSide(dside, prepaid))
        self.picked = {i for i, c in enumerate(customers) if prepaid.picks(c.id)} if prepaid else set()
        self.progressive = any(p.progressive_billing for s in (bside, dside) for p in s.catalog.plans.values())

    @property
    def wanted(self) -> bool:
        return self.prepaid is not None or self.progressive

    def customer_month(self, i: int, c: SimCustomer, m: int, plans: tuple[Plan, Plan],
                       usage: dict[str, MetricUsage], bills: tuple[Decimal, Decimal]) -> None:
        prepays = i in self.picked
        for one, plan, billed in zip(self.sides, plans, bills, strict=True):
            one.customer_month(i, c, m, plan, usage, billed, prepays)

    def prepaid_rows(self) -> dict[str, Any] | None:
        if self.prepaid is None:
            return None
        b, d = (one.wallets.finish().as_dict() if one.wallets else {} for one in self.sides)
        return {"pack": self.prepaid.pack, "share": self.prepaid.share, "top_up": self.prepaid.top_up,
                "baseline": b, "draft": d}

    def progressive_rows(self) -> dict[str, Any] | None:
        if not self.progressive:
            return None
        b, d = (one.early.as_dict() for one in self.sides)
        return {"baseline": b, "draft": d}
