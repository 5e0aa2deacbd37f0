"""A lifecycle what-if on a sample of a large cohort, scaled back up.

The full engine (billing, collection, dunning, messaging, on a test clock, twice) runs at
tens of customer-months a second, so 10,000 customers x 12 months cannot all go through it
in minutes. Instead a stratified random sample runs through the engine on both sides (the
same customers: the baseline/draft difference is a paired comparison), and what it did is
scaled back up with the help of what is known of every customer before the run: its
**priced revenue** x_i (engine.simulation.auxiliary: the pure pricing what-if, the same
pricing code as invoices, over the run's months; one figure a side).

Design. Groups g are the customer's plan and whether it is in the cohort from the start or
joins later; within each group customers are sorted by priced revenue and cut into up to
BANDS quantile bands (equal counts; one band when the group's priced revenue does not vary):
the strata h. Each stratum keeps min(2, N_h) customers; the rest of the sample is allocated
in proportion to N_h * sqrt(mean_h x^2) (Neyman allocation for the ratio estimator's
residuals when what payments and dunning leave of an invoice is a share that does not depend
on its amount), never more than N_h. When no priced revenue is known each stratum takes its
proportional share of `size`, at least min(2, N_h): the plan-only draw as before.
Drawn without replacement with a fixed seed.

Estimator (a side, a figure y: cash collected, invoices, ...). Design weights w_i = N_h/n_h;
in each group the separate-group ratio estimator

    Y^_g = X_g * (sum_{i in s_g} w_i y_i) / (sum_{i in s_g} w_i x_i),   Y^ = sum_g Y^_g,

where X_g is the group's priced revenue summed over every cohort customer (known exactly),
i.e. every sampled customer counts w_i * X_g / X^_g times (its calibrated weight; X^_g = 0,
a group that prices nothing, keeps w_i: Horvitz-Thompson). Its bias is of order 1/n_g, small
against its standard error. Variance (Taylor linearization), with residuals
e_i = y_i - R^_g x_i and R^_g = Y^_g / X_g:

    V^(Y^) = sum_h N_h^2 (1 - n_h/N_h) s_eh^2 / n_h,   s_eh^2 = the sample variance of e in h,

and the 95 % margin is 1.96 sqrt(V^). The draft - baseline difference is estimated from the
same customers: its residuals are e_i(draft) - e_i(baseline), each side's own, so what the
two sides share cancels. Without priced revenue (`priced` empty) every x is 0, there is one
band per group, and the estimator is plain Horvitz-Thompson with stratified variance.

Money: weights and the ratio are Decimal (28 digits); the scaled figures are rounded once, per
month, to the cent (engine.simulation.lifecycle_figures). A margin is a spread, not money owed:
computed in float and rounded half-even to the cent. docs/console.md, "The lifecycle what-if",
says the same for pricing managers.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from engine.simulation.cohort import Cohort, SimCustomer

Z95 = 1.96
BANDS = 4  # priced-revenue bands within each plan/start group
ZERO = Decimal(0)
ONE = Decimal(1)
Priced = Mapping[str, Decimal]  # customer id -> priced revenue over the run's months (missing: 0)


@dataclass(frozen=True)
class Sample:
    cohort: Cohort  # the customers run through the engine
    weights: dict[str, Decimal]  # customer id -> how many cohort customers it stands for (design weight)
    strata: dict[str, tuple[int, int]]  # stratum -> (N_h, n_h)
    population: int
    stratum_of: dict[str, str] = field(default_factory=dict)  # sampled customer id -> stratum
    # side -> the group's priced revenue over every cohort customer (X_g), and over the sample (X^_g)
    known: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    estimated: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    priced: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # side -> sampled customer -> x_i

    @property
    def scaled(self) -> bool:
        return len(self.cohort.customers) < self.population

    def sentence(self) -> str:
        n = len(self.cohort.customers)
        if not self.scaled:
            return f"every one of the {n:,} customers ran through the engine"
        if not self.known:
            return (
                f"a stratified random sample of {n:,} of the {self.population:,} customers (by plan, and from the "
                f"start or joining later) ran through the engine; figures are scaled back up by each stratum's weight"
            )
        return (
            f"a stratified random sample of {n:,} of the {self.population:,} customers (by plan, from the start or "
            f"joining later, and band of priced revenue) ran through the engine; figures are scaled back up by each "
            f"stratum's weight and calibrated to the whole cohort's priced revenue (a ratio estimate)"
        )

    def side_weights(self, side: str) -> dict[str, Decimal]:
        """The calibrated weights of a side: w_i X_g / X^_g (w_i where nothing is priced)."""
        if side not in self.known:
            return dict(self.weights)
        factor = {g: self.known[side][g] / x if x else ONE for g, x in self.estimated[side].items()}
        return {cid: w * factor[_group(self.stratum_of[cid])] for cid, w in self.weights.items()}


def _group_of(c: SimCustomer) -> str:
    return f"{c.plan}/{'start' if c.joined == 0 else 'joins'}"


def _group(stratum: str) -> str:
    return stratum.split("#")[0]


def _bands(members: list[SimCustomer], priced: Priced) -> list[list[SimCustomer]]:
    """The group cut into up to BANDS quantile bands of priced revenue (at least 2 customers each)."""
    ordered = sorted(members, key=lambda c: (priced.get(c.id, ZERO), c.id))
    if priced.get(ordered[0].id, ZERO) == priced.get(ordered[-1].id, ZERO):
        return [members]
    count = max(1, min(BANDS, len(members) // 2))
    return [ordered[len(ordered) * b // count : len(ordered) * (b + 1) // count] for b in range(count)]


def _strata(cohort: Cohort, priced: Priced) -> dict[str, list[SimCustomer]]:
    groups: dict[str, list[SimCustomer]] = defaultdict(list)
    for c in cohort.customers:
        groups[_group_of(c)].append(c)
    return {f"{g}#{b}": band for g in sorted(groups) for b, band in enumerate(_bands(groups[g], priced))}


def _allocation(strata: Mapping[str, list[SimCustomer]], size: int, priced: Priced) -> dict[str, int]:
    """min(2, N_h) each, the rest in proportion to N_h * RMS_h(x); nothing priced: each its
    proportional share, at least min(2, N_h) (the plan-only draw as it always was)."""
    need = {
        h: len(m) * math.sqrt(sum(float(priced.get(c.id, ZERO)) ** 2 for c in m) / len(m)) for h, m in strata.items()
    }
    total_size = sum(len(m) for m in strata.values())
    if not any(need.values()):
        return {h: min(len(m), max(min(2, len(m)), round(len(m) * size / total_size))) for h, m in strata.items()}
    base = {h: min(2, len(m)) for h, m in strata.items()}
    spare, total = max(0, size - sum(base.values())), sum(need.values())
    return {h: min(len(strata[h]), base[h] + round(spare * need[h] / total)) for h in strata}


def _draw(
    strata: Mapping[str, list[SimCustomer]], allocation: Mapping[str, int], rng: random.Random
) -> tuple[dict[str, Decimal], dict[str, str]]:
    """n_h customers of each stratum without replacement: their weights N_h / n_h and strata."""
    weights: dict[str, Decimal] = {}
    stratum_of: dict[str, str] = {}
    for h, n_h in allocation.items():
        for c in rng.sample(strata[h], n_h):
            weights[c.id] = Decimal(len(strata[h])) / Decimal(n_h)
            stratum_of[c.id] = h
    return weights, stratum_of


def _whole(cohort: Cohort, strata: Mapping[str, list[SimCustomer]]) -> Sample:
    """Every customer, each standing for itself."""
    return Sample(
        cohort,
        {c.id: ONE for c in cohort.customers},
        {h: (len(m), len(m)) for h, m in strata.items()},
        len(cohort.customers),
        {c.id: h for h, m in strata.items() for c in m},
    )


def stratified_sample(
    cohort: Cohort, size: int, *, seed: int = 13, priced: Mapping[str, Priced] | None = None
) -> Sample:
    """At most about `size` customers (the whole cohort when it is no larger). `priced`: side
    -> every cohort customer's priced revenue; the first side's cuts the bands."""
    priced = priced or {}
    bands_by = next(iter(priced.values()), {})
    strata = _strata(cohort, bands_by)
    total = len(cohort.customers)
    if total <= size:
        return _whole(cohort, strata)
    allocation = _allocation(strata, size, bands_by)
    weights, stratum_of = _draw(strata, allocation, random.Random(seed))
    picked = [c for c in cohort.customers if c.id in weights]  # in the cohort's order
    sub = Cohort(picked, cohort.usage_growth, cohort.source, cohort.description, cohort.usage_notes)
    sample = Sample(sub, weights, {h: (len(strata[h]), n) for h, n in allocation.items()}, total, stratum_of)
    return _with_priced(sample, cohort, priced)


def _by_group(sample: Sample, values: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """sum_{i in s_g} w_i v_i for each group g (missing values: 0)."""
    out: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for cid, w in sample.weights.items():
        out[_group(sample.stratum_of[cid])] += w * values.get(cid, ZERO)
    return dict(out)


def _with_priced(sample: Sample, cohort: Cohort, priced: Mapping[str, Priced]) -> Sample:
    """The sample with each side's known (X_g) and estimated (X^_g) priced revenue per group."""
    for side, x in priced.items():
        known: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for c in cohort.customers:
            known[_group_of(c)] += x.get(c.id, ZERO)
        sample.known[side] = dict(known)
        sample.estimated[side] = _by_group(sample, x)
        sample.priced[side] = {cid: x.get(cid, ZERO) for cid in sample.weights}
    return sample


def _residuals(sample: Sample, y: Mapping[str, Decimal], side: str | None) -> dict[str, float]:
    """e_i = y_i - R^_g x_i (y_i itself without priced revenue for the side)."""
    if side is None or side not in sample.known:
        return {cid: float(y.get(cid, ZERO)) for cid in sample.weights}
    x, y_hat = sample.priced[side], _by_group(sample, y)
    ratio = {g: y_hat.get(g, ZERO) / xe if xe else ZERO for g, xe in sample.estimated[side].items()}
    return {cid: float(y.get(cid, ZERO) - ratio[_group(sample.stratum_of[cid])] * x[cid]) for cid in sample.weights}


def _margin(sample: Sample, e: Mapping[str, float]) -> Decimal:
    if not sample.scaled:
        return ZERO
    by_stratum: dict[str, list[float]] = defaultdict(list)
    for cid, v in e.items():
        by_stratum[sample.stratum_of[cid]].append(v)
    variance = 0.0
    for h, values in by_stratum.items():
        big_n, n = sample.strata[h]
        if n < 2:
            continue
        mean = sum(values) / n
        s2 = sum((v - mean) ** 2 for v in values) / (n - 1)
        variance += big_n * big_n * (1 - n / big_n) * s2 / n
    # A margin is an estimate's spread, not money owed: float is fine here, rounded to the cent.
    return Decimal(repr(round(Z95 * math.sqrt(variance), 2)))


def margin95(sample: Sample, per_customer: Mapping[str, Decimal], *, side: str | None = None) -> Decimal:
    """The 95 % margin of the scaled-up total of a per-customer figure of `side` (its ratio
    estimate when the side's priced revenue is known; 0 when every customer ran)."""
    return _margin(sample, _residuals(sample, per_customer, side))


def estimate(sample: Sample, per_customer: Mapping[str, Decimal], *, side: str | None = None) -> Decimal:
    """The scaled-up total of a per-customer figure of `side` (unrounded)."""
    weights = sample.side_weights(side) if side is not None else sample.weights
    return sum((w * per_customer.get(cid, ZERO) for cid, w in weights.items()), ZERO)


def margin95_delta(sample: Sample, baseline: Mapping[str, Decimal], draft: Mapping[str, Decimal]) -> Decimal:
    """The 95 % margin of the draft - baseline difference on the same customers: the paired
    residuals e_i(draft) - e_i(baseline)."""
    b, d = _residuals(sample, baseline, "baseline"), _residuals(sample, draft, "draft")
    return _margin(sample, {cid: d[cid] - b[cid] for cid in sample.weights})
