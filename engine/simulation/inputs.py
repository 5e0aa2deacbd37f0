"""A what-if's inputs checked before anything is priced: the cohort, the months, the
currencies, where each plan's customers go in the draft, the customers moved one by one and
the credit pack. Each refusal names what to fix. Moved from engine.simulation.run."""

from __future__ import annotations

from collections.abc import Mapping

from engine.catalog.model import Catalog
from engine.simulation.cohort import Cohort
from engine.simulation.errors import CohortError, SimulationError
from engine.simulation.prepaid import Prepaid, check_prepaid


def plan_pairs(baseline: Catalog, draft: Catalog, cohort: Cohort, plan_map: Mapping[str, str]) -> dict[str, str]:
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


def check_moved(draft: Catalog, moved: Mapping[str, str]) -> None:
    unknown = sorted(set(moved.values()) - set(draft.plans))
    if unknown:
        raise SimulationError(
            f"customers are moved to plan {unknown[0]!r}, which is not in the draft ({', '.join(sorted(draft.plans))})"
        )



def check_prepaid_both(baseline: Catalog, draft: Catalog, prepaid: Prepaid | None) -> None:
    if prepaid is not None:
        check_prepaid(baseline, prepaid, "baseline")
        check_prepaid(draft, prepaid, "draft")


def check_inputs(baseline: Catalog, draft: Catalog, cohort: Cohort, months: object) -> None:
    if not cohort.customers:
        raise CohortError(["the cohort has no customers: nothing to simulate"])
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 120:
        raise SimulationError("months: between 1 and 120")
    if baseline.currency != draft.currency:
        raise SimulationError(
            f"the draft bills in {draft.currency} and the baseline in {baseline.currency}: compare like with like"
        )

