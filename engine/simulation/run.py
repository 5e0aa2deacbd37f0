"""The what-if run: a cohort priced month by month on a baseline and a draft catalog, with
the very pricing code live billing uses (one `PeriodPricer` per plan and period, `bill()` per
customer), and the comparison a pricing manager needs before publishing.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from dateutil.relativedelta import relativedelta

from engine.catalog.model import Catalog, Feature, Plan, Price
from engine.periods import Period, period_boundary
from engine.pricing import AppliedDiscount, Discount, MetricUsage, PeriodPricer
from engine.pricing.quoting import PromotionSource, period_document
from engine.simulation.cohort import ADDITIVE, INTEGRAL, ONE, ZERO, Cohort, CohortError, SimCustomer, usage_at
from engine.simulation.errors import SimulationError
from engine.simulation.extras import Extras, months_per_period
from engine.simulation.mrr import Recurring
from engine.simulation.prepaid import Prepaid, check_prepaid
from engine.simulation.promo_memo import remembered

Progress = Callable[[float, str], None]
HUNDRED = Decimal(100)
NO_DISCOUNTS: tuple[AppliedDiscount, ...] = ()


def month_start(d: date) -> date:
    return d.replace(day=1)


# None for day, week and once: handled one by one.
_months_per_period = months_per_period


class _Side:
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
        per = _months_per_period(plan)
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
        per = _months_per_period(plan)
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
    discounts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Where the cohort's usage came from, one sentence per plan and metric (never a silent zero).
    usage_source: list[str] = field(default_factory=list)
    # Credit packs (engine.simulation.prepaid): {pack, share, top_up, baseline: {...}, draft: {...}}.
    prepaid: dict[str, Any] | None = None
    # Progressive billing (engine.simulation.early): {baseline: {...}, draft: {...}}.
    progressive: dict[str, Any] | None = None

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
        cols = ["month", "customers", "baseline", "draft", "delta", "mrr_baseline", "mrr_draft"]
        w = csv.DictWriter(out, cols, extrasaction="ignore", lineterminator="\n")
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
            "discounts": s(self.discounts),
            "warnings": self.warnings,
            "usage_source": self.usage_source,
            "prepaid": _plain(self.prepaid),
            "progressive": _plain(self.progressive),
        }


def _plain(figures: dict[str, Any] | None) -> dict[str, Any] | None:
    """Figures with amounts as strings (JSON), one level of nesting deep."""
    if figures is None:
        return None
    return {k: _plain(v) if isinstance(v, dict) else str(v) if isinstance(v, Decimal) else v
            for k, v in figures.items()}


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
        change = _level_change(catalog_b.features.get(fid), has, amount_b, amount_d)
        if change is not None:
            out.append((fid, change))
    return out


def _level_change(feature: Feature | None, has: bool, amount_b: int | None,
                  amount_d: int | None) -> str | None:
    """"lost" when the draft plan lacks the feature, "reduced" when it gives less of a
    counted one (a limit where there was none, or a lower one)."""
    if not has:
        return "lost"
    if feature is None or feature.type not in ("quantity", "metered"):
        return None
    if amount_d is not None and (amount_b is None or amount_d < amount_b):
        return "reduced"
    return None


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


def _check_moved(draft: Catalog, moved: Mapping[str, str]) -> None:
    unknown = sorted(set(moved.values()) - set(draft.plans))
    if unknown:
        raise SimulationError(
            f"customers are moved to plan {unknown[0]!r}, which is not in the draft ({', '.join(sorted(draft.plans))})"
        )


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
    promotions: PromotionSource | None = None,
    draft_promotions: PromotionSource | None = None,
    moved: Mapping[str, str] | None = None,
    prepaid: Prepaid | None = None,
) -> SimulationResult:
    """Price `cohort` for `months` calendar months from `start` on both catalogs.

    Revenue is what the bills total before tax (tax is collected for someone else). Every
    customer-month is priced twice, baseline and draft, with the same usage. `promotions`:
    the pricing rules in force (engine.rules.RulePromotions), applied as on a quote or an
    invoice; `draft_promotions`: the proposed ones (default: the same). `plan_map` moves every
    customer of a plan to another draft plan; `moved` (customer id -> draft plan, from
    engine.simulation.moves) moves single customers, e.g. a share of the cohort. `prepaid`:
    a share of the cohort buys a credit pack whose wallet pays their bills; plans with
    progressive billing get their interim invoices counted (SimulationResult.prepaid,
    .progressive). Raises
    SimulationError / CohortError with a message naming what to fix."""
    import time

    t0 = time.perf_counter()
    _check_inputs(baseline, draft, cohort, months)
    start = month_start(start)
    pairs = _plan_pairs(baseline, draft, cohort, plan_map or {})
    _check_moved(draft, moved or {})
    _check_prepaid(baseline, draft, prepaid)
    rules_differ = draft_promotions is not None and draft_promotions is not promotions
    bside = _Side(baseline, start, promotions)
    dside = _Side(draft, start, draft_promotions if rules_differ else promotions)
    run = _Run(cohort, bside, dside, pairs, rules_differ, moved or {}, months)
    extras = Extras(bside, dside, cohort.customers, prepaid)
    run.extras = extras if extras.wanted else None
    labels = [bside.month(m).start.isoformat()[:7] for m in range(months)]
    for m in range(months):
        active_count = run.month(m, labels[m])
        if progress is not None:
            progress((m + 1) / months, f"month {m + 1} of {months} ({labels[m]}): {active_count:,} customers")
    warnings = unexercised(baseline, draft, cohort, pairs, months)
    if rules_differ and run.discounts_b == run.discounts_d:
        warnings.append(
            "the draft pricing rules give this cohort the same discounts as the rules in force: no customer "
            "of the cohort meets a condition they change (segment, country, plan, usage, ...)"
        )
    result = run.result(baseline, draft, labels, warnings, time.perf_counter() - t0)
    result.prepaid, result.progressive = extras.prepaid_rows(), extras.progressive_rows()
    if prepaid is not None and not extras.picked:
        result.warnings.append(f"prepaid: {prepaid.share:.0%} of the cohort picks no customer: no pack is bought "
                               "(a larger cohort or share)")
    return result


def _check_prepaid(baseline: Catalog, draft: Catalog, prepaid: Prepaid | None) -> None:
    if prepaid is not None:
        check_prepaid(baseline, prepaid, "baseline")
        check_prepaid(draft, prepaid, "draft")


def _check_inputs(baseline: Catalog, draft: Catalog, cohort: Cohort, months: object) -> None:
    if not cohort.customers:
        raise CohortError(["the cohort has no customers: nothing to simulate"])
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 120:
        raise SimulationError("months: between 1 and 120")
    if baseline.currency != draft.currency:
        raise SimulationError(
            f"the draft bills in {draft.currency} and the baseline in {baseline.currency}: compare like with like"
        )


class _Run:
    """The sums of a run as it goes, month by month."""

    def __init__(
        self,
        cohort: Cohort,
        bside: _Side,
        dside: _Side,
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
        simple = _months_per_period(bplan) == 1 and _months_per_period(dplan) == 1
        checks_b = _quota_checks(baseline, bplan)
        checks_d = _quota_checks(draft, dplan)
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
                self.mrr_b.spread(c, m, b, _months_per_period(bplan), bplan.interval == "once")
                self.mrr_d.spread(c, m, d, _months_per_period(dplan), dplan.interval == "once")
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
                _check_quotas(i, u, checks_b, self.quota_b, self.blocked_b)
                _check_quotas(i, u, checks_d, self.quota_d, self.blocked_d)
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


def _change_from(before: Price | None, after: Price | None) -> tuple[Decimal, int | None]:
    """From how much of its metric (or quantity) a price change shows on a bill, and the tier
    (1-based) it starts in: for tiers that differ only from tier k on, usage past tier k-1;
    for anything else, any usage at all."""
    if before is None or after is None or not (before.tiers and after.tiers):
        return ZERO, None
    if replace(before, tiers=()) != replace(after, tiers=()):
        return ZERO, None
    # the first tier that differs (or the first one only one side has)
    k = next((k for k, (x, y) in enumerate(zip(before.tiers, after.tiers, strict=False)) if x != y),
             min(len(before.tiers), len(after.tiers)))
    return (before.tiers[k - 1].up_to or ZERO) if k else ZERO, k + 1


def unexercised(baseline: Catalog, draft: Catalog, cohort: Cohort, pairs: Mapping[str, str], months: int) -> list[str]:
    """A warning for every price the draft changes that no customer of the cohort can show
    the effect of (e.g. a tier price with every customer's usage at zero or below the
    tier): such a what-if would answer 0.00 for a change that matters."""
    out = []
    growth = max(ONE, (ONE + cohort.usage_growth) ** (months - 1))
    by_plan: dict[str, list[SimCustomer]] = defaultdict(list)
    for c in cohort.customers:
        if c.joined < months:
            by_plan[c.plan].append(c)
    for plan_id, target in sorted(pairs.items()):
        out += _plan_unexercised(baseline, draft, plan_id, target, by_plan[plan_id], growth)
    return out


def _plan_unexercised(baseline: Catalog, draft: Catalog, plan_id: str, target: str,
                      customers: list[SimCustomer], growth: Decimal) -> list[str]:
    bplan, dplan = baseline.plans[plan_id], draft.plans[target]
    span = Decimal(max(_months_per_period(bplan) or 1, _months_per_period(dplan) or 1))
    additive = {m for m, x in baseline.metrics.items() if x.aggregation in ADDITIVE}
    out = []
    for pid, b, d, price in _changed_prices(bplan, dplan):
        threshold, tier = _change_from(b, d)
        reach, what, hint = _reach(price.metric, customers, growth, span if price.metric in additive else ONE)
        if reach <= threshold:
            out.append(_cannot_exercise(plan_id, pid, tier, threshold, reach, what, hint))
    return out


def _changed_prices(bplan: Plan, dplan: Plan) -> list[tuple[str, Price | None, Price | None, Price]]:
    """(id, before, after, the price as it is now) of each price the draft changes, leaving
    out those charged whatever the inputs (a flat price on no metric)."""
    before = {p.id: p for p in bplan.prices}
    after = {p.id: p for p in dplan.prices}
    out = []
    for pid in sorted(set(before) | set(after)):
        b, d = before.get(pid), after.get(pid)
        price = d or b
        assert price is not None
        if b != d and not (price.model == "flat" and price.metric is None):
            out.append((pid, b, d, price))
    return out


def _reach(metric: str | None, customers: list[SimCustomer], growth: Decimal,
           scale: Decimal) -> tuple[Decimal, str, str]:
    """The most any customer has of what a price reads (scaled by usage growth and the billing
    period for a metric), what that is, and where a cohort gives it."""
    if metric is None:
        return max((c.quantity for c in customers), default=ZERO), "seats (quantity)", "quantity column"
    reach = max((c.usage.get(metric, ZERO) for c in customers), default=ZERO) * growth * scale
    return reach, metric, f"billing simulate --usage {metric}=..., or the console's usage inputs"


def _cannot_exercise(plan_id: str, pid: str, tier: int | None, threshold: Decimal, reach: Decimal,
                     what: str, hint: str) -> str:
    change = f"tier {tier} of price {pid!r}" if tier else f"price {pid!r}"
    if threshold > 0:
        seen = f"no customer on {plan_id} uses more than {_fmt(reach)} {what}, and the change starts above {_fmt(threshold)}"
    else:
        seen = f"no customer on {plan_id} has any {what}"
    return (
        f"cannot exercise: the draft changes {change} of plan {plan_id!r} ({what}), but {seen}: "
        f"this what-if cannot show what the change does. Give the cohort {what} ({hint})."
    )


def _fmt(x: Decimal) -> str:
    return f"{x.normalize():f}" if x == x.to_integral_value() else str(x)


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
