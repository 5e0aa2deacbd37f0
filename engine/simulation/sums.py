"""A run's sums: every active customer-month priced on both sides and added up per customer,
plan and month (with recurring revenue, discounts, quotas and the prepaid and progressive
figures beside), and the rows of the `SimulationResult` they make (totals, deltas, movers'
rows, per plan, segment, discount, quota and feature). Moved from engine.simulation.run
(`RunSums` was `_Run`; its report methods stay with the sums they read)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.catalog.model import Catalog, Plan
from engine.pricing import AppliedDiscount, MetricUsage
from engine.simulation.cohort import ONE, ZERO, Cohort, SimCustomer, usage_at
from engine.simulation.entitlements import check_quotas, feature_changes, quota_checks
from engine.simulation.extras import Extras, months_per_period
from engine.simulation.mrr import Recurring
from engine.simulation.result import SimulationResult
from engine.simulation.side import NO_DISCOUNTS, SidePricer

HUNDRED = Decimal(100)


class RunSums:
    """The sums of a run as it goes, month by month."""

    def __init__(
        self,
        cohort: Cohort,
        bside: SidePricer,
        dside: SidePricer,
        pairs: dict[str, str],
        rules_differ: bool,
        moved: Mapping[str, str],
        months: int,
    ) -> None:
        self.cohort = cohort
        self.bside, self.dside = bside, dside
        self.baseline, self.draft = bside.catalog, dside.catalog
        self.pairs = pairs
        self.rules_differ = rules_differ
        self.growth = ONE + cohort.usage_growth
        self.integral = bside.integral | dside.integral
        # Customers by (baseline plan, draft plan): a plan's customers may go several ways.
        self.targets = [moved.get(c.id) or pairs[c.plan] for c in cohort.customers]
        self.groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, c in enumerate(cohort.customers):
            self.groups[(c.plan, self.targets[i])].append(i)
        self.mrr_b, self.mrr_d = Recurring(months), Recurring(months)
        n = len(cohort.customers)
        self.cust_b = [ZERO] * n
        self.cust_d = [ZERO] * n
        self.cust_off_b = [ZERO] * n
        self.cust_off_d = [ZERO] * n
        self.cust_months = [0] * n
        self.month_rows: list[dict[str, Any]] = []
        self.month_plan: list[dict[str, Any]] = []
        self.quota_b: dict[str, set[int]] = defaultdict(set)
        self.quota_d: dict[str, set[int]] = defaultdict(set)
        self.blocked_b: dict[str, set[int]] = defaultdict(set)
        self.blocked_d: dict[str, set[int]] = defaultdict(set)
        self.discounts_b: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        self.discounts_d: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        self.total_cm = 0
        self.positions = {id(c): i for i, c in enumerate(cohort.customers)}
        self.extras: Extras | None = None

    def month(self, m: int, label: str) -> int:
        """Price month m for every active customer; returns how many were active."""
        factor = self.growth**m
        mb = md = ZERO
        active_count = 0
        for (plan_id, target), idxs in self.groups.items():
            pb, pd, count = self._plan_month(m, factor, plan_id, target, idxs)
            if count:
                self.month_plan.append(
                    {"month": label, "plan": plan_id, "draft_plan": target, "customers": count,
                     "baseline": pb, "draft": pd, "delta": pd - pb}
                )
            mb += pb
            md += pd
            active_count += count
        self.total_cm += active_count
        self.month_rows.append(
            {"month": label, "customers": active_count, "baseline": mb, "draft": md, "delta": md - mb,
             "mrr_baseline": self.mrr_b.at(m), "mrr_draft": self.mrr_d.at(m)}
        )
        return active_count

    def _plan_month(
        self, m: int, factor: Decimal, plan_id: str, target: str, idxs: list[int]
    ) -> tuple[Decimal, Decimal, int]:
        baseline, draft, bside, dside = self.baseline, self.draft, self.bside, self.dside
        bplan, dplan = baseline.plans[plan_id], draft.plans[target]
        simple = months_per_period(bplan) == 1 and months_per_period(dplan) == 1
        checks_b = quota_checks(baseline, bplan)
        checks_d = quota_checks(draft, dplan)
        # A plan the draft leaves as it was, under the same rules, prices the same: bill it once.
        same = bplan == dplan and baseline.rounding == draft.rounding and not self.rules_differ
        month = bside.month(m)
        plain = simple and bside.promotions is None and dside.promotions is None
        if plain:
            # The hot path: every customer of the group bills the same calendar month.
            bbill, dbill = bside.bill(bplan, month), dside.bill(dplan, month)
        customers = self.cohort.customers
        # Locals: this loop runs once per customer-month.
        cust_b, cust_d, cust_months, integral = self.cust_b, self.cust_d, self.cust_months, self.integral
        observe = self._observer(checks_b, checks_d, (bplan, dplan))
        pb = pd = ZERO
        count = 0
        for i in idxs:
            c = customers[i]
            if c.joined > m or (c.left is not None and m >= c.left):
                continue
            u = c.metric_usage() if factor == ONE else usage_at(c, factor, integral)
            if plain:
                b = bbill(c.quantity, u).total
                d = b if same else dbill(c.quantity, u).total
            else:
                b, d = self._charges(bplan, dplan, c, m, u, simple, same)
            cust_b[i] += b
            cust_d[i] += d
            cust_months[i] += 1
            pb += b
            pd += d
            count += 1
            if observe is not None:
                observe(i, c, m, u, b, d)
            if not simple:
                self.mrr_b.spread(c, m, b, months_per_period(bplan), bplan.interval == "once")
                self.mrr_d.spread(c, m, d, months_per_period(dplan), dplan.interval == "once")
        if simple:  # billed monthly on both sides: a month's bills are its recurring revenue
            self.mrr_b.add(m, pb)
            self.mrr_d.add(m, pd)
        return pb, pd, count

    def _observer(
        self, checks_b: list[tuple[str, str, Decimal, str]], checks_d: list[tuple[str, str, Decimal, str]],
        plans: tuple[Plan, Plan],
    ) -> Callable[[int, SimCustomer, int, dict[str, MetricUsage], Decimal, Decimal], None] | None:
        """What looks at each customer-month beside its price: the quotas, and the prepaid and
        progressive figures (None: nothing to look at, the hot path stays bare)."""
        extras = self.extras
        if not (checks_b or checks_d or extras):
            return None

        def observe(i: int, c: SimCustomer, m: int, u: dict[str, MetricUsage], b: Decimal, d: Decimal) -> None:
            if checks_b or checks_d:
                check_quotas(i, u, checks_b, self.quota_b, self.blocked_b)
                check_quotas(i, u, checks_d, self.quota_d, self.blocked_d)
            if extras is not None:
                extras.customer_month(i, c, m, plans, u, (b, d))

        return observe

    def _charges(
        self, bplan: Plan, dplan: Plan, c: SimCustomer, m: int, u: dict[str, MetricUsage], simple: bool, same: bool
    ) -> tuple[Decimal, Decimal]:
        """One customer-month on both sides, with the discounts it carries."""
        i = self.positions[id(c)]
        if simple:
            month = self.bside.month(m)
            found_b: tuple[Decimal, tuple[AppliedDiscount, ...]] | None = self.bside.charge(
                bplan, month, c, u, m - c.joined
            )
            found_d = found_b if same else self.dside.charge(dplan, month, c, u, m - c.joined)
        else:
            found_b = self.bside.amount(bplan, c, m, u)
            found_d = found_b if same else self.dside.amount(dplan, c, m, u)
        b, off_b = found_b or (ZERO, NO_DISCOUNTS)
        d, off_d = found_d or (ZERO, NO_DISCOUNTS)
        for applied, table, per_customer in (
            (off_b, self.discounts_b, self.cust_off_b),
            (off_d, self.discounts_d, self.cust_off_d),
        ):
            for x in applied:
                table[(x.source, x.reason)] += x.amount
                per_customer[i] += x.amount
        return b, d

    def result(
        self, baseline: Catalog, draft: Catalog, labels: list[str], warnings: list[str], seconds: float
    ) -> SimulationResult:
        customers = self.cohort.customers
        cust_rows, by_plan, by_seg = self._customer_rows()
        month_rows = self.month_rows
        tb = sum((r["baseline"] for r in month_rows), ZERO)
        td = sum((r["draft"] for r in month_rows), ZERO)
        if self.total_cm == 0:
            warnings.insert(0, "no customer was active in the months simulated")
        return SimulationResult(
            currency=baseline.currency,
            start=self.bside.start,
            months=labels,
            baseline_name=baseline.name,
            draft_name=draft.name,
            cohort=self.cohort.description or f"{len(customers):,} customers ({self.cohort.source})",
            customer_months=self.total_cm,
            by_month=month_rows,
            by_month_plan=self.month_plan,
            by_plan=_group_rows(by_plan, "plan"),
            by_segment=_group_rows(by_seg, "segment"),
            customers=cust_rows,
            quota=self._quota_rows(),
            features=self._feature_rows(),
            totals=self._totals(cust_rows, tb, td),
            discounts=self._discount_rows(),
            warnings=warnings,
            seconds=seconds,
            usage_source=list(self.cohort.usage_notes),
        )

    def _totals(self, cust_rows: list[dict[str, Any]], tb: Decimal, td: Decimal) -> dict[str, Any]:
        return {
            "baseline": tb,
            "draft": td,
            "delta": td - tb,
            "delta_pct": _pct(td - tb, tb),
            "customers": sum(1 for x in self.cust_months if x),
            "pay_more": sum(1 for r in cust_rows if r["delta"] > 0),
            "pay_less": sum(1 for r in cust_rows if r["delta"] < 0),
            "baseline_discount": sum(self.discounts_b.values(), ZERO),
            "draft_discount": sum(self.discounts_d.values(), ZERO),
        }

    def _customer_rows(self) -> tuple[list[dict[str, Any]], dict[str, list[Any]], dict[str, list[Any]]]:
        """Per customer, and the sums per plan and per segment: [customers, baseline, draft]."""
        targets = self.targets
        cust_b, cust_d, cust_months = self.cust_b, self.cust_d, self.cust_months
        cust_rows: list[dict[str, Any]] = []
        by_plan: dict[str, list[Any]] = {}
        by_seg: dict[str, list[Any]] = {}
        for i, c in enumerate(self.cohort.customers):
            if not cust_months[i]:
                continue
            b, d = cust_b[i], cust_d[i]
            cust_rows.append(
                {
                    "customer_id": c.id,
                    "plan": c.plan,
                    "draft_plan": targets[i],
                    "segment": c.segment,
                    "quantity": c.quantity,
                    "months": cust_months[i],
                    "baseline": b,
                    "draft": d,
                    "delta": d - b,
                    "baseline_discount": self.cust_off_b[i],
                    "draft_discount": self.cust_off_d[i],
                }
            )
            for table, key in ((by_plan, c.plan), (by_seg, c.segment or "(none)")):
                acc = table.setdefault(key, [0, ZERO, ZERO])
                acc[0] += 1
                acc[1] += b
                acc[2] += d
        return cust_rows, by_plan, by_seg

    def _discount_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "source": source,
                "reason": reason,
                "baseline": self.discounts_b.get((source, reason), ZERO),
                "draft": self.discounts_d.get((source, reason), ZERO),
            }
            for source, reason in sorted(set(self.discounts_b) | set(self.discounts_d))
        ]

    def _quota_rows(self) -> list[dict[str, Any]]:
        quota_b, quota_d, blocked_b, blocked_d = self.quota_b, self.quota_d, self.blocked_b, self.blocked_d
        return [
            {
                "feature": fid,
                "baseline_over_limit": len(quota_b[fid]),
                "draft_over_limit": len(quota_d[fid]),
                "newly_over_limit": len(quota_d[fid] - quota_b[fid]),
                "baseline_blocked": len(blocked_b[fid]),
                "draft_blocked": len(blocked_d[fid]),
                "newly_blocked": len(blocked_d[fid] - blocked_b[fid]),
            }
            for fid in sorted(set(quota_b) | set(quota_d) | set(blocked_b) | set(blocked_d))
        ]

    def _feature_rows(self) -> list[dict[str, Any]]:
        out = []
        for (plan_id, target), idxs in sorted(self.groups.items()):
            changes = feature_changes(self.baseline, self.baseline.plans[plan_id], self.draft, self.draft.plans[target])
            affected = sum(1 for i in idxs if self.cust_months[i])
            if not affected:
                continue
            for fid, change in changes:
                out.append(
                    {"plan": plan_id, "draft_plan": target, "feature": fid, "change": change, "customers": affected}
                )
        return out


def _pct(delta: Decimal, base: Decimal) -> Decimal | None:
    if base == 0:
        return None
    return (delta * HUNDRED / base).quantize(Decimal("0.1"), ROUND_HALF_UP)



def _group_rows(table: dict[str, list[Any]], name: str) -> list[dict[str, Any]]:
    """One row per plan or segment from its [customers, baseline, draft] sums."""
    return [
        {
            name: k,
            "customers": v[0],
            "baseline": v[1],
            "draft": v[2],
            "delta": v[2] - v[1],
            "delta_pct": _pct(v[2] - v[1], v[1]),
        }
        for k, v in sorted(table.items())
    ]
