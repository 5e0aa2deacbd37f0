"""The what-if run: a cohort priced month by month on a baseline and a draft catalog, with
the very pricing code live billing uses (one `PeriodPricer` per plan and period, `bill()` per
customer), and the comparison a pricing manager needs before publishing.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from dateutil.relativedelta import relativedelta

from engine.catalog.model import Catalog, Plan
from engine.periods import Period, period_boundary
from engine.pricing import MetricUsage, PeriodPricer
from engine.simulation.cohort import ADDITIVE, INTEGRAL, ONE, ZERO, Cohort, CohortError, SimCustomer, usage_at

Progress = Callable[[float, str], None]
HUNDRED = Decimal(100)


class SimulationError(ValueError):
    """A what-if that cannot run as asked (the message says what to change)."""


def month_start(d: date) -> date:
    return d.replace(day=1)


def _months_per_period(plan: Plan) -> int | None:
    if plan.interval == "month":
        return plan.interval_count
    if plan.interval == "year":
        return 12 * plan.interval_count
    return None  # day, week, once: handled one by one


class _Side:
    """One catalog's pricing over the months of a run: the periods each plan bills in a
    month, and one pricer per (plan, period), built once."""

    def __init__(self, catalog: Catalog, start: date) -> None:
        self.catalog = catalog
        self.start = start
        self._pricers: dict[tuple[str, Period], Callable[..., Any]] = {}
        self._periods: dict[tuple[str, int, int], tuple[tuple[Period, Decimal], ...]] = {}
        self.additive = frozenset(m for m, x in catalog.metrics.items() if x.aggregation in ADDITIVE)
        self.integral = frozenset(m for m, x in catalog.metrics.items() if x.aggregation in INTEGRAL)

    def month(self, m: int) -> Period:
        return Period(self.start + relativedelta(months=m), self.start + relativedelta(months=m + 1))

    def periods(self, plan: Plan, joined: int, m: int) -> tuple[tuple[Period, Decimal], ...]:
        """The billing periods of `plan` that start in month `m` for a customer who joined in
        month `joined`, each with the factor that scales a month's additive usage to it."""
        per = _months_per_period(plan)
        key_joined = 0 if per == 1 else (joined % per if per else joined)
        key = (plan.id, key_joined, m)
        found = self._periods.get(key)
        if found is not None:
            return found
        anchor = self.start + relativedelta(months=joined)
        month = self.month(m)
        out: list[tuple[Period, Decimal]] = []
        if plan.interval == "once":
            if m == joined:
                out.append((month, ONE))
        elif per is not None:
            if (m - joined) % per == 0:
                n = (m - joined) // per
                out.append(
                    (
                        Period(
                            period_boundary(anchor, plan.interval, n, plan.interval_count),
                            period_boundary(anchor, plan.interval, n + 1, plan.interval_count),
                        ),
                        Decimal(per),
                    )
                )
        else:
            n = 0
            while True:
                s = period_boundary(anchor, plan.interval, n, plan.interval_count)
                if s >= month.end:
                    break
                e = period_boundary(anchor, plan.interval, n + 1, plan.interval_count)
                if s >= month.start:
                    out.append((Period(s, e), Decimal(e.toordinal() - s.toordinal()) / Decimal(month.days)))
                n += 1
        result = tuple(out)
        self._periods[key] = result
        return result

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

    def amount(self, plan: Plan, c: SimCustomer, m: int, usage: dict[str, MetricUsage]) -> Decimal | None:
        """What the customer is billed for the periods starting in month m (None: nothing bills)."""
        periods = self.periods(plan, c.joined, m)
        if not periods:
            return None
        total = ZERO
        for period, scale in periods:
            total += self.bill(plan, period)(c.quantity, self.scaled(usage, scale)).total
        return total


@dataclass
class SimulationResult:
    currency: str
    start: date
    months: list[str]
    baseline_name: str
    draft_name: str
    cohort: str
    customer_months: int
    by_month: list[dict[str, Any]]
    by_month_plan: list[dict[str, Any]]
    by_plan: list[dict[str, Any]]
    by_segment: list[dict[str, Any]]
    customers: list[dict[str, Any]]
    quota: list[dict[str, Any]]
    features: list[dict[str, Any]]
    totals: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def movers(self, n: int = 10, *, more: bool = True) -> list[dict[str, Any]]:
        """The customers who would pay most more (or, with more=False, most less) under the draft."""
        rows = [c for c in self.customers if (c["delta"] > 0 if more else c["delta"] < 0)]
        rows.sort(key=lambda c: (-c["delta"] if more else c["delta"], c["customer_id"]))
        return rows[:n]

    def customers_csv(self) -> str:
        out = io.StringIO()
        cols = ["customer_id", "plan", "draft_plan", "segment", "quantity", "months", "baseline", "draft", "delta"]
        w = csv.DictWriter(out, cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for c in self.customers:
            w.writerow(c)
        return out.getvalue()

    def months_csv(self) -> str:
        out = io.StringIO()
        w = csv.DictWriter(out, ["month", "customers", "baseline", "draft", "delta"], lineterminator="\n")
        w.writeheader()
        for r in self.by_month:
            w.writerow(r)
        return out.getvalue()

    def to_dict(self, *, customers: int = 10) -> dict[str, Any]:
        """JSON-ready summary (amounts as strings): what `billing simulate --json` prints."""

        def s(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in rows]

        return {
            "currency": self.currency,
            "start": self.start.isoformat(),
            "months": self.months,
            "baseline": self.baseline_name,
            "draft": self.draft_name,
            "cohort": self.cohort,
            "customer_months": self.customer_months,
            "totals": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.totals.items()},
            "by_month": s(self.by_month),
            "by_plan": s(self.by_plan),
            "by_segment": s(self.by_segment),
            "pay_more": s(self.movers(customers, more=True)),
            "pay_less": s(self.movers(customers, more=False)),
            "quota": s(self.quota),
            "features": s(self.features),
            "warnings": self.warnings,
        }


def _entitlement_level(plan: Plan, feature: str) -> tuple[bool, int | None]:
    """(has it, how much: None = unlimited)."""
    e = plan.entitlements.get(feature)
    if e is None or not e.enabled:
        return False, 0
    return True, e.quantity if e.quantity is not None else e.limit


def feature_changes(catalog_b: Catalog, plan_b: Plan, catalog_d: Catalog, plan_d: Plan) -> list[tuple[str, str]]:
    """Features a customer moving from plan_b to plan_d would lose ("lost") or get less of ("reduced")."""
    out = []
    for fid in sorted(plan_b.entitlements):
        had, amount_b = _entitlement_level(plan_b, fid)
        if not had:
            continue
        has, amount_d = _entitlement_level(plan_d, fid)
        feature = catalog_b.features.get(fid)
        if not has:
            out.append((fid, "lost"))
        elif feature is not None and feature.type in ("quantity", "metered"):
            if amount_d is not None and (amount_b is None or amount_d < amount_b):
                out.append((fid, "reduced"))
    return out


def _quota_checks(catalog: Catalog, plan: Plan) -> list[tuple[str, str, Decimal, str]]:
    """(feature, metric, monthly limit, overage) for the plan's metered features that have a limit."""
    out = []
    for fid, e in plan.entitlements.items():
        f = catalog.features.get(fid)
        if f is None or f.type != "metered" or f.metric is None or not e.enabled or e.limit is None:
            continue
        out.append((fid, f.metric, Decimal(e.limit), e.overage))
    return out


def _plan_pairs(baseline: Catalog, draft: Catalog, cohort: Cohort, plan_map: Mapping[str, str]) -> dict[str, str]:
    problems = []
    pairs = {}
    for p in sorted(cohort.plans()):
        if p not in baseline.plans:
            problems.append(f"plan {p!r} is not in the baseline catalog ({', '.join(sorted(baseline.plans))})")
            continue
        target = plan_map.get(p, p)
        if target not in draft.plans:
            problems.append(
                f"plan {p!r} is not in the draft: map it to one of {', '.join(sorted(draft.plans))}"
                if target == p
                else f"plan {p!r} is mapped to {target!r}, which is not in the draft"
            )
            continue
        pairs[p] = target
    if problems:
        raise SimulationError("; ".join(problems))
    return pairs


def _pct(delta: Decimal, base: Decimal) -> Decimal | None:
    if base == 0:
        return None
    return (delta * HUNDRED / base).quantize(Decimal("0.1"), ROUND_HALF_UP)


def simulate(
    baseline: Catalog,
    draft: Catalog,
    cohort: Cohort,
    *,
    months: int = 12,
    start: date,
    plan_map: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Price `cohort` for `months` calendar months from `start` on both catalogs.

    Revenue is what the bills total before tax (tax is collected for someone else). Every
    customer-month is priced twice, baseline and draft, with the same usage. Raises
    SimulationError / CohortError with a message naming what to fix."""
    import time

    t0 = time.perf_counter()
    if not cohort.customers:
        raise CohortError(["the cohort has no customers: nothing to simulate"])
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 120:
        raise SimulationError("months: between 1 and 120")
    if baseline.currency != draft.currency:
        raise SimulationError(
            f"the draft bills in {draft.currency} and the baseline in {baseline.currency}: compare like with like"
        )
    start = month_start(start)
    pairs = _plan_pairs(baseline, draft, cohort, plan_map or {})
    bside, dside = _Side(baseline, start), _Side(draft, start)
    growth = ONE + cohort.usage_growth
    integral = bside.integral | dside.integral
    labels = [bside.month(m).start.isoformat()[:7] for m in range(months)]

    groups: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(cohort.customers):
        groups[c.plan].append(i)
    n = len(cohort.customers)
    cust_b = [ZERO] * n
    cust_d = [ZERO] * n
    cust_months = [0] * n
    month_rows: list[dict[str, Any]] = []
    month_plan: list[dict[str, Any]] = []
    quota_b: dict[str, set[int]] = defaultdict(set)
    quota_d: dict[str, set[int]] = defaultdict(set)
    blocked_b: dict[str, set[int]] = defaultdict(set)
    blocked_d: dict[str, set[int]] = defaultdict(set)
    customers = cohort.customers
    total_cm = 0

    for m in range(months):
        factor = growth**m
        mb = md = ZERO
        active_count = 0
        for plan_id, idxs in groups.items():
            bplan, dplan = baseline.plans[plan_id], draft.plans[pairs[plan_id]]
            simple = _months_per_period(bplan) == 1 and _months_per_period(dplan) == 1
            checks_b = _quota_checks(baseline, bplan)
            checks_d = _quota_checks(draft, dplan)
            pb = pd = ZERO
            count = 0
            if simple:
                # The hot path: every customer of the group bills the same calendar month.
                month = bside.month(m)
                bbill, dbill = bside.bill(bplan, month), dside.bill(dplan, month)
                # A plan the draft leaves as it was prices the same: bill it once.
                same = bplan == dplan and baseline.rounding == draft.rounding
                for i in idxs:
                    c = customers[i]
                    if c.joined > m or (c.left is not None and m >= c.left):
                        continue
                    u = c.metric_usage() if factor == ONE else usage_at(c, factor, integral)
                    b = bbill(c.quantity, u).total
                    d = b if same else dbill(c.quantity, u).total
                    cust_b[i] += b
                    cust_d[i] += d
                    cust_months[i] += 1
                    pb += b
                    pd += d
                    count += 1
                    if checks_b or checks_d:
                        _check_quotas(i, u, checks_b, quota_b, blocked_b)
                        _check_quotas(i, u, checks_d, quota_d, blocked_d)
            else:
                for i in idxs:
                    c = customers[i]
                    if not c.active(m):
                        continue
                    u = c.metric_usage() if factor == ONE else usage_at(c, factor, integral)
                    b = bside.amount(bplan, c, m, u) or ZERO
                    d = dside.amount(dplan, c, m, u) or ZERO
                    cust_b[i] += b
                    cust_d[i] += d
                    cust_months[i] += 1
                    pb += b
                    pd += d
                    count += 1
                    if checks_b or checks_d:
                        _check_quotas(i, u, checks_b, quota_b, blocked_b)
                        _check_quotas(i, u, checks_d, quota_d, blocked_d)
            if count:
                month_plan.append(
                    {
                        "month": labels[m],
                        "plan": plan_id,
                        "customers": count,
                        "baseline": pb,
                        "draft": pd,
                        "delta": pd - pb,
                    }
                )
            mb += pb
            md += pd
            active_count += count
        total_cm += active_count
        month_rows.append(
            {"month": labels[m], "customers": active_count, "baseline": mb, "draft": md, "delta": md - mb}
        )
        if progress is not None:
            progress((m + 1) / months, f"month {m + 1} of {months} ({labels[m]}): {active_count:,} customers")

    # Per customer, plan and segment.
    cust_rows: list[dict[str, Any]] = []
    by_plan: dict[str, list[Any]] = {}
    by_seg: dict[str, list[Any]] = {}
    for i, c in enumerate(customers):
        if not cust_months[i]:
            continue
        b, d = cust_b[i], cust_d[i]
        cust_rows.append(
            {
                "customer_id": c.id,
                "plan": c.plan,
                "draft_plan": pairs[c.plan],
                "segment": c.segment,
                "quantity": c.quantity,
                "months": cust_months[i],
                "baseline": b,
                "draft": d,
                "delta": d - b,
            }
        )
        for table, key in ((by_plan, c.plan), (by_seg, c.segment or "(none)")):
            acc = table.setdefault(key, [0, ZERO, ZERO])
            acc[0] += 1
            acc[1] += b
            acc[2] += d

    def rows(table: dict[str, list[Any]], name: str) -> list[dict[str, Any]]:
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

    # Quotas and features.
    quota_rows = []
    for fid in sorted(set(quota_b) | set(quota_d) | set(blocked_b) | set(blocked_d)):
        quota_rows.append(
            {
                "feature": fid,
                "baseline_over_limit": len(quota_b[fid]),
                "draft_over_limit": len(quota_d[fid]),
                "newly_over_limit": len(quota_d[fid] - quota_b[fid]),
                "baseline_blocked": len(blocked_b[fid]),
                "draft_blocked": len(blocked_d[fid]),
                "newly_blocked": len(blocked_d[fid] - blocked_b[fid]),
            }
        )
    feature_rows = []
    for plan_id, idxs in sorted(groups.items()):
        changes = feature_changes(baseline, baseline.plans[plan_id], draft, draft.plans[pairs[plan_id]])
        affected = sum(1 for i in idxs if cust_months[i])
        for fid, change in changes:
            if affected:
                feature_rows.append(
                    {
                        "plan": plan_id,
                        "draft_plan": pairs[plan_id],
                        "feature": fid,
                        "change": change,
                        "customers": affected,
                    }
                )

    tb = sum((r["baseline"] for r in month_rows), ZERO)
    td = sum((r["draft"] for r in month_rows), ZERO)
    warnings = []
    if total_cm == 0:
        warnings.append("no customer was active in the months simulated")
    return SimulationResult(
        currency=baseline.currency,
        start=start,
        months=labels,
        baseline_name=baseline.name,
        draft_name=draft.name,
        cohort=cohort.description or f"{len(customers):,} customers ({cohort.source})",
        customer_months=total_cm,
        by_month=month_rows,
        by_month_plan=month_plan,
        by_plan=rows(by_plan, "plan"),
        by_segment=rows(by_seg, "segment"),
        customers=cust_rows,
        quota=quota_rows,
        features=feature_rows,
        totals={
            "baseline": tb,
            "draft": td,
            "delta": td - tb,
            "delta_pct": _pct(td - tb, tb),
            "customers": sum(1 for x in cust_months if x),
            "pay_more": sum(1 for r in cust_rows if r["delta"] > 0),
            "pay_less": sum(1 for r in cust_rows if r["delta"] < 0),
        },
        warnings=warnings,
        seconds=time.perf_counter() - t0,
    )


def _check_quotas(
    i: int,
    usage: Mapping[str, MetricUsage],
    checks: list[tuple[str, str, Decimal, str]],
    over: dict[str, set[int]],
    blocked: dict[str, set[int]],
) -> None:
    for fid, metric, limit, overage in checks:
        u = usage.get(metric)
        if u is not None and u.quantity > limit:
            over[fid].add(i)
            if overage == "block":
                blocked[fid].add(i)
