"""A lifecycle what-if on a sample of a large cohort, scaled back up.

The full engine (billing, collection, dunning, messaging, on a test clock, twice) runs at
tens of customer-months a second, so 10,000 customers x 12 months cannot all go through it
in minutes. Instead: a stratified random sample (strata: the customer's plan and whether it
is in the cohort from the start or joins later; proportional allocation, at least 2 per
stratum that has 2; seeded), run through the engine on both sides (the same customers, so
the baseline/draft difference is a paired comparison), every customer's figures weighted by
N_h / n_h of its stratum (the Horvitz-Thompson estimate of the cohort total), and a 95 %
margin from the stratified variance  sum_h N_h^2 (1 - n_h/N_h) s_h^2 / n_h  of per-customer
totals. docs/console.md, "The lifecycle what-if", says the same for pricing managers.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from engine.simulation.cohort import Cohort, SimCustomer

Z95 = 1.96


@dataclass(frozen=True)
class Sample:
    cohort: Cohort  # the customers run through the engine
    weights: dict[str, Decimal]  # customer id -> how many cohort customers it stands for
    strata: dict[str, tuple[int, int]]  # stratum -> (N_h, n_h)
    population: int

    @property
    def scaled(self) -> bool:
        return len(self.cohort.customers) < self.population

    def sentence(self) -> str:
        n = len(self.cohort.customers)
        if not self.scaled:
            return f"every one of the {n:,} customers ran through the engine"
        return (
            f"a stratified random sample of {n:,} of the {self.population:,} customers (by plan, and from the start "
            f"or joining later) ran through the engine; figures are scaled back up by each stratum's weight"
        )


def _stratum(c: SimCustomer) -> str:
    return f"{c.plan}/{'start' if c.joined == 0 else 'joins'}"


def stratified_sample(cohort: Cohort, size: int, *, seed: int = 13) -> Sample:
    """At most `size` customers (the whole cohort when it is no larger)."""
    groups: dict[str, list[SimCustomer]] = defaultdict(list)
    for c in cohort.customers:
        groups[_stratum(c)].append(c)
    total = len(cohort.customers)
    if total <= size:
        return Sample(cohort, {c.id: Decimal(1) for c in cohort.customers},
                      {h: (len(g), len(g)) for h, g in groups.items()}, total)
    rng = random.Random(seed)
    picked: list[SimCustomer] = []
    weights: dict[str, Decimal] = {}
    strata: dict[str, tuple[int, int]] = {}
    for h in sorted(groups):
        members = groups[h]
        n_h = min(len(members), max(min(2, len(members)), round(len(members) * size / total)))
        chosen = rng.sample(members, n_h)
        strata[h] = (len(members), n_h)
        for c in chosen:
            weights[c.id] = Decimal(len(members)) / Decimal(n_h)
        picked.extend(chosen)
    order = {id(c): i for i, c in enumerate(cohort.customers)}
    picked.sort(key=lambda c: order[id(c)])
    return Sample(Cohort(picked, cohort.usage_growth, cohort.source, cohort.description, cohort.usage_notes),
                  weights, strata, total)


def margin95(sample: Sample, per_customer: Mapping[str, Decimal]) -> Decimal:
    """The 95 % margin of the scaled-up total of a per-customer figure (0 when every customer ran)."""
    if not sample.scaled:
        return Decimal(0)
    by_stratum: dict[str, list[float]] = defaultdict(list)
    for c in sample.cohort.customers:
        by_stratum[_stratum(c)].append(float(per_customer.get(c.id, 0)))
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
