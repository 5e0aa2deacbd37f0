"""The what-if run: a cohort priced month by month on a baseline and a draft catalog, with
the very pricing code live billing uses (one `PeriodPricer` per plan and period, `bill()` per
customer), and the comparison a pricing manager needs before publishing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

from engine.catalog.model import Catalog
from engine.pricing.quoting import PromotionSource
from engine.simulation.cohort import Cohort
from engine.simulation.entitlements import feature_changes
from engine.simulation.errors import SimulationError
from engine.simulation.exercised import unexercised
from engine.simulation.extras import Extras
from engine.simulation.inputs import check_inputs, check_moved, check_prepaid_both, plan_pairs
from engine.simulation.prepaid import Prepaid
from engine.simulation.result import SimulationResult
from engine.simulation.side import SidePricer, month_start
from engine.simulation.sums import RunSums

# What engine.simulation re-exports from here (the names moved to the modules above stay
# importable from engine.simulation.run, where callers found them).
__all__ = ["SimulationError", "SimulationResult", "feature_changes", "month_start", "simulate", "unexercised"]

Progress = Callable[[float, str], None]


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
    check_inputs(baseline, draft, cohort, months)
    start = month_start(start)
    pairs = plan_pairs(baseline, draft, cohort, plan_map or {})
    check_moved(draft, moved or {})
    check_prepaid_both(baseline, draft, prepaid)
    rules_differ = draft_promotions is not None and draft_promotions is not promotions
    bside = SidePricer(baseline, start, promotions)
    dside = SidePricer(draft, start, draft_promotions if rules_differ else promotions)
    run = RunSums(cohort, bside, dside, pairs, rules_differ, moved or {}, months)
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

