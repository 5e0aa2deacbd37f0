"""A synthetic cohort drawn from its spec: seeded, with every month's joins and departures
decided up front (so a baseline and a draft see the same people), and a sentence per plan
and metric saying where its usage came from. Moved from engine.simulation.cohort."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from decimal import Decimal

from engine.catalog.model import Catalog
from engine.simulation.cohort import INTEGRAL, Cohort, SimCustomer
from engine.simulation.distribution import Distribution
from engine.simulation.errors import CohortError
from engine.simulation.observed import Observed
from engine.simulation.spec import SyntheticSpec
from engine.simulation.typical import plan_metrics, typical_usage


def _pick(rng: random.Random, names: list[str], cumulative: list[float]) -> str:
    x = rng.random() * cumulative[-1]
    lo, hi = 0, len(cumulative) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return names[lo]


def _cumulative(weights: Mapping[str, float]) -> tuple[list[str], list[float]]:
    names = [n for n, w in weights.items() if w > 0]
    acc, cum = 0.0, []
    for n in names:
        acc += weights[n]
        cum.append(acc)
    return names, cum


def synthetic_cohort(spec: SyntheticSpec, catalog: Catalog) -> Cohort:
    """Draw the cohort (seeded: the same spec gives the same customers), with the joins and
    departures of every month decided up front, so a baseline and a draft see the same people."""
    problems = spec.problems(catalog)
    if problems:
        raise CohortError(problems)
    rng = random.Random(spec.seed)
    plan_names, plan_cum = _cumulative(spec.plan_mix)
    seg_names, seg_cum = _cumulative(spec.segments) if spec.segments else ([], [])
    integral = {m for m, metric in catalog.metrics.items() if metric.aggregation in INTEGRAL}
    by_plan = {p: _usage_specs(spec, catalog, p, integral) for p in plan_names}
    customers: list[SimCustomer] = []

    def new(month: int) -> SimCustomer:
        plan = _pick(rng, plan_names, plan_cum)
        usage: dict[str, Decimal] = {}
        for m, d, whole in by_plan[plan]:
            if isinstance(d, Observed):
                usage[m] = d.draw(rng)  # a stored customer-month, exact
                continue
            x = d.draw(rng)
            usage[m] = Decimal(round(x)) if whole else Decimal(repr(round(x, 2)))
        seats = max(round(spec.seats.draw(rng)), 0)
        return SimCustomer(
            f"sim_{len(customers) + 1:07d}",
            plan,
            Decimal(seats),
            usage,
            segment=_pick(rng, seg_names, seg_cum) if seg_names else "",
            joined=month,
        )

    _populate(spec, rng, new, customers)
    mix = ", ".join(f"{p} {w:g}" for p, w in spec.plan_mix.items())
    usage_note = _usage_note(spec, by_plan)
    return Cohort(
        customers,
        usage_growth=Decimal(repr(spec.usage_growth)),
        source="synthetic",
        description=f"{spec.count:,} synthetic customers ({mix}), {usage_note}, growth {spec.growth:.1%}, "
        f"churn {spec.churn:.1%} a month",
        usage_notes=_usage_notes(spec, catalog, by_plan),
    )


def _populate(spec: SyntheticSpec, rng: random.Random, new: Callable[[int], SimCustomer],
              customers: list[SimCustomer]) -> None:
    """The first month's customers, then each month's departures (churn) and joins (growth)."""
    active: list[SimCustomer] = []
    for _ in range(spec.count):
        c = new(0)
        customers.append(c)
        active.append(c)
    carry = 0.0
    for month in range(1, spec.months):
        if spec.churn > 0:
            active = _staying(rng, active, spec.churn, month)
        if spec.growth > 0:
            carry += len(active) * spec.growth
            joining = int(carry)
            carry -= joining
            for _ in range(joining):
                c = new(month)
                customers.append(c)
                active.append(c)


def _staying(rng: random.Random, active: list[SimCustomer], churn: float, month: int) -> list[SimCustomer]:
    """Who stays this month; each who leaves is marked with the month."""
    staying = []
    for c in active:
        if rng.random() < churn:
            c.left = month
        else:
            staying.append(c)
    return staying


def _usage_note(spec: SyntheticSpec, by_plan: dict[str, list[tuple[str, Distribution | Observed, bool]]]) -> str:
    usage_note = "typical usage" if spec.default_usage == "typical" else "no usage"
    if any(isinstance(d, Observed) for specs in by_plan.values() for _, d, _ in specs):
        usage_note = "usage drawn from the store where it has some, else typical usage"
    if spec.usage:
        usage_note = f"usage of {', '.join(sorted(spec.usage))} as given, else {usage_note}"
    return usage_note


def _usage_notes(
    spec: SyntheticSpec, catalog: Catalog, by_plan: Mapping[str, list[tuple[str, Distribution | Observed, bool]]]
) -> list[str]:
    """One sentence per plan and metric its bill reads: where the cohort's usage comes from."""
    out = []
    for plan_id in sorted(by_plan):
        drawn = {m: d for m, d, _ in by_plan[plan_id]}
        for m in sorted(set(plan_metrics(catalog, catalog.plans[plan_id])) | set(drawn)):
            d = drawn.get(m)
            if isinstance(d, Observed):
                out.append(d.sentence(plan_id, m))
            elif m in spec.usage:
                out.append(f"plan {plan_id}, metric {m}: usage as given ({_describe(spec.usage[m])})")
            elif d is not None:
                stored = "no stored usage, " if spec.observed or spec.store_read else ""
                out.append(f"plan {plan_id}, metric {m}: {stored}typical usage around {d.median:,.0f} a month")
            else:
                out.append(f"plan {plan_id}, metric {m}: no usage (zero), as asked")
    return out


def _describe(d: Distribution) -> str:
    if d.kind == "constant":
        return f"{d.value:,g} a month"
    if d.kind == "uniform":
        return f"uniform {d.low:,g} to {d.high:,g} a month"
    return f"lognormal, median {d.median:,g}, sigma {d.sigma:g}"


def _usage_specs(
    spec: SyntheticSpec, catalog: Catalog, plan_id: str, integral: set[str]
) -> list[tuple[str, Distribution | Observed, bool]]:
    """What a customer of the plan draws: the spec's distributions, and for the plan's other
    metrics what the store saw of them, else the typical ones (unless the spec asks for no
    default usage)."""
    dists: dict[str, Distribution | Observed] = {}
    if spec.default_usage == "typical":
        dists.update(typical_usage(catalog, catalog.plans[plan_id]))
        dists.update({m: o for m, o in spec.observed.get(plan_id, {}).items() if m in catalog.metrics})
    dists.update(spec.usage)
    return [(m, d, m in integral) for m, d in dists.items()]
