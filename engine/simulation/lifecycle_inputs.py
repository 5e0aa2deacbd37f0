"""What a lifecycle what-if is asked, checked before any engine starts: how the cohort's
cards behave (`CardModel`), and the two sides (baseline and draft, each with its rulesets and
the plan its customers are on). Pure: the run itself is engine/system/lifecycle.py, which
drives the real engine."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from engine.catalog import Catalog
from engine.simulation.cohort import Cohort
from engine.simulation.errors import CohortError, SimulationError


@dataclass(frozen=True)
class CardModel:
    """How the cohort's cards behave: a first attempt on an invoice declines with
    `failure_rate`; a retry succeeds with `recovery_rate`. Draws are keyed by (customer,
    the customer's n-th invoice, attempt), so baseline and draft meet the same declines."""

    failure_rate: float = 0.05
    recovery_rate: float = 0.5
    seed: int = 11

    def problems(self) -> list[str]:
        return [
            f"{name}: a share between 0 and 1"
            for name, v in (("failure_rate", self.failure_rate), ("recovery_rate", self.recovery_rate))
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1
        ]

    def draw(self, *parts: object) -> float:
        """A uniform draw in [0, 1) fixed by the seed and `parts` (the same on both sides)."""
        digest = hashlib.blake2b(repr((self.seed, *parts)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / float(1 << 64)


def check_run(cards: CardModel, cohort: Cohort, months: int, baseline: Catalog, draft: Catalog) -> None:
    """What a lifecycle run needs before it starts an engine."""
    if cards.problems():
        raise SimulationError("; ".join(cards.problems()))
    if not cohort.customers:
        raise CohortError(["the cohort has no customers: nothing to simulate"])
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 24:
        raise SimulationError("months: between 1 and 24 for a lifecycle run")
    if baseline.currency != draft.currency:
        raise SimulationError(f"currency: the baseline is in {baseline.currency}, the draft in {draft.currency}")


Side = tuple[str, Catalog, dict[str, str], dict[str, str]]  # label, catalog, rulesets, plan -> plan run


def sides(
    baseline: Catalog,
    draft: Catalog,
    cohort: Cohort,
    rulesets: Mapping[str, str],
    draft_rulesets: Mapping[str, str],
    plan_map: Mapping[str, str],
) -> tuple[Side, Side]:
    """The baseline and the draft, each with its rulesets and the plan its customers are on
    (the draft's through `plan_map`; every plan must exist on its side)."""
    cohort_plans = {c.plan for c in cohort.customers}
    missing = sorted(cohort_plans - set(baseline.plans))
    if missing:
        raise SimulationError(f"plan {missing[0]!r} is not in the baseline catalog")
    draft_plans = {p: plan_map.get(p, p) for p in cohort_plans}
    lost = sorted(p for p, t in draft_plans.items() if t not in draft.plans)
    if lost:
        raise SimulationError(
            f"plan {lost[0]!r} is not in the draft: map it to one of {', '.join(sorted(draft.plans))}"
        )
    return (
        ("baseline", baseline, dict(rulesets), {p: p for p in draft_plans}),
        ("draft", draft, {**rulesets, **draft_rulesets}, draft_plans),
    )
