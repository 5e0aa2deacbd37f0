"""What the lifecycle what-if knows of every cohort customer before the engine runs: its
priced revenue over the run's months on each side, from the pure pricing what-if (`simulate`,
the same pricing code as invoices; 10,000 customers x 12 months in seconds). The sample
(engine.simulation.sampling) is stratified by it and its estimates are calibrated to its
exact cohort total. Pricing rules are left out: any figure known for every customer keeps
the estimate sound (its cohort total is exact); the closer it follows cash collected, the
tighter the margin."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from engine.catalog.model import Catalog
from engine.simulation.cohort import Cohort
from engine.simulation.run import simulate


def priced_revenue(
    baseline: Catalog,
    draft: Catalog,
    cohort: Cohort,
    *,
    months: int,
    start: date,
    plan_map: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Decimal]]:
    """side ("baseline", "draft") -> customer id -> revenue priced over `months` (before tax;
    a customer never active is left out: 0)."""
    result = simulate(baseline, draft, cohort, months=months, start=start, plan_map=plan_map)
    return {side: {row["customer_id"]: row[side] for row in result.customers} for side in ("baseline", "draft")}
