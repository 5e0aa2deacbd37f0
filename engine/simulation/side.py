"""One catalog's side of a what-if: the periods each plan bills in a month of the run, one
pricer per (plan, period) built once, and a customer-month priced as live billing would
(with the pricing rules, as a quote: `period_document`). Moved from engine.simulation.run
(`SidePricer` was `_Side`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from dateutil.relativedelta import relativedelta

from engine.catalog.model import Catalog, Plan
from engine.periods import Period, period_boundary
from engine.pricing import AppliedDiscount, Discount, MetricUsage, PeriodPricer
from engine.pricing.quoting import PromotionSource, period_document
from engine.simulation.cohort import ADDITIVE, INTEGRAL, ONE, ZERO, SimCustomer
from engine.simulation.extras import months_per_period
from engine.simulation.promo_memo import remembered

NO_DISCOUNTS: tuple[AppliedDiscount, ...] = ()


def month_start(d: date) -> date:
    return d.replace(day=1)



class SidePricer:
    """One catalog's pricing over the months of a run: the periods each plan bills in a
    month, and one pricer per (plan, period), built once."""

    def __init__(self, catalog: Catalog, start: date, promotions: PromotionSource | None = None) -> None:
        self.catalog = catalog
        self.start = start
        self.promotions = None if promotions is None else _Redeeming(remembered(promotions))
        self._pricers: dict[tuple[str, Period], Callable[..., Any]] = {}
        self._periods: dict[tuple[str, int, int], tuple[tuple[Period, Decimal], ...]] = {}
        self._months: dict[int, Period] = {}
        self.additive = frozenset(m for m, x in catalog.metrics.items() if x.aggregation in ADDITIVE)
        self.integral = frozenset(m for m, x in catalog.metrics.items() if x.aggregation in INTEGRAL)

    def month(self, m: int) -> Period:
        found = self._months.get(m)
        if found is None:
            found = Period(self.start + relativedelta(months=m), self.start + relativedelta(months=m + 1))
            self._months[m] = found
        return found

    def periods(self, plan: Plan, joined: int, m: int) -> tuple[tuple[Period, Decimal], ...]:
        """The billing periods of `plan` that start in month `m` for a customer who joined in
        month `joined`, each with the factor that scales a month's additive usage to it."""
        per = months_per_period(plan)
        key_joined = 0 if per == 1 else (joined % per if per else joined)
        key = (plan.id, key_joined, m)
        found = self._periods.get(key)
        if found is not None:
            return found
        result = tuple(self._starting(plan, per, joined, m))
        self._periods[key] = result
        return result

    def _starting(self, plan: Plan, per: int | None, joined: int, m: int) -> list[tuple[Period, Decimal]]:
        """periods() worked out: a one-off charge in the month joined, whole months every
        `per` months, or (weeks, days) each period that starts within the month."""
        anchor = self.start + relativedelta(months=joined)
        month = self.month(m)
        if plan.interval == "once":
            return [(month, ONE)] if m == joined else []
        if per is not None:
            if (m - joined) % per:
                return []
            n = (m - joined) // per
            return [(Period(period_boundary(anchor, plan.interval, n, plan.interval_count),
                            period_boundary(anchor, plan.interval, n + 1, plan.interval_count)), Decimal(per))]
        out: list[tuple[Period, Decimal]] = []
        n = 0
        while True:
            s = period_boundary(anchor, plan.interval, n, plan.interval_count)
            if s >= month.end:
                break
            e = period_boundary(anchor, plan.interval, n + 1, plan.interval_count)
            if s >= month.start:
                out.append((Period(s, e), Decimal(e.toordinal() - s.toordinal()) / Decimal(month.days)))
            n += 1
        return out

    def bill(self, plan: Plan, period: Period) -> Callable[..., Any]:
        key = (plan.id, period)
        fn = self._pricers.get(key)
        if fn is None:
            fn = PeriodPricer(self.catalog, plan, period).bill
            self._pricers[key] = fn
        return fn

    def scaled(self, usage: dict[str, MetricUsage], scale: Decimal) -> dict[str, MetricUsage]:
        if scale == ONE:
            return usage
        out = dict(usage)
        for m, u in usage.items():
            if m in self.additive:
                q = u.quantity * scale
                out[m] = MetricUsage(
                    q.quantize(ONE, ROUND_HALF_UP) if m in self.integral else q.quantize(Decimal("0.01"), ROUND_HALF_UP)
                )
        return out

    def charge(
        self, plan: Plan, period: Period, c: SimCustomer, usage: Mapping[str, MetricUsage], cycle: int
    ) -> tuple[Decimal, tuple[AppliedDiscount, ...]]:
        """What a customer is billed for one period before tax, and the discounts in it. With
        pricing rules, the period is priced as a quote or an invoice is (`period_document`:
        the rules asked when it opens and when it closes), else by the plan's pricer."""
        if self.promotions is None:
            return self.bill(plan, period)(c.quantity, usage).total, NO_DISCOUNTS
        ask: dict[str, Any] = {
            "catalog": self.catalog,
            "plan": plan,
            "customer": c.customer(),
            "period": period,
            "quantity": c.quantity,
            "subscription": {"id": c.id, "plan": plan.id, "quantity": c.quantity, "status": "active", "cycle": cycle},
        }
        if not self.promotions(usage={}, **ask)[0] and not self.promotions(usage=usage, **ask)[0]:
            # No rule gives this period a discount: the document would be the plan's bill
            # (whole_period without discounts), which the cached pricer gives much faster.
            return self.bill(plan, period)(c.quantity, usage).total, NO_DISCOUNTS
        doc = period_document(
            self.catalog,
            plan,
            period,
            quantity=c.quantity,
            usage=usage,
            customer=ask["customer"],
            promotions=self.promotions,
            subscription=ask["subscription"],
        )
        return doc.subtotal - doc.discount, doc.discounts

    def amount(
        self, plan: Plan, c: SimCustomer, m: int, usage: dict[str, MetricUsage]
    ) -> tuple[Decimal, tuple[AppliedDiscount, ...]] | None:
        """What the customer is billed for the periods starting in month m (None: nothing bills)."""
        periods = self.periods(plan, c.joined, m)
        if not periods:
            return None
        total = ZERO
        applied: list[AppliedDiscount] = []
        for period, scale in periods:
            cycle = self.cycle(plan, c, period) if self.promotions is not None else 0
            amount, discounts = self.charge(plan, period, c, self.scaled(usage, scale), cycle)
            total += amount
            applied.extend(discounts)
        return total, tuple(applied)

    def cycle(self, plan: Plan, c: SimCustomer, period: Period) -> int:
        """The period's number in the customer's subscription (0: the first)."""
        anchor = self.start + relativedelta(months=c.joined)
        per = months_per_period(plan)
        if per:
            return ((period.start.year - anchor.year) * 12 + period.start.month - anchor.month) // per
        n = 0
        while period_boundary(anchor, plan.interval, n + 1, plan.interval_count) <= period.start:
            n += 1
        return n


class _Redeeming:
    """A rule's discount with `periods: N` is redeemed at the first period it is given and
    applies to that period and the next N-1, as for a subscription (engine.sales.terms)."""

    def __init__(self, source: PromotionSource) -> None:
        self.source = source
        self._first: dict[str, dict[str, tuple[int, Discount]]] = {}

    def __call__(self, **kwargs: Any) -> tuple[list[Discount], list[dict[str, Any]]]:
        found, trace = self.source(**kwargs)
        cycle = int(kwargs["subscription"]["cycle"])
        redeemed = self._first.setdefault(str(kwargs["customer"]["id"]), {})
        out = [d for d in found if d.periods is None]
        for d in found:
            if d.periods is not None and d.source not in redeemed:
                redeemed[d.source] = (cycle, d)
        out += [d for first, d in redeemed.values() if first <= cycle < first + int(d.periods or 0)]
        return out, trace

