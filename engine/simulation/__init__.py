"""What-if simulation: a cohort priced months ahead on a baseline and a draft catalog with the
same pricing code live billing uses, and the shape of a lifecycle what-if's result (the run
itself drives the real engine: engine.system.lifecycle_on_engine). Shared by the console and `billing simulate`.

    cohort = synthetic_cohort(SyntheticSpec(count=1000, plan_mix={"pro": 3, "free": 1},
                              usage={"api_calls": Distribution("lognormal", median=20000, sigma=1)}),
                              baseline)
    result = simulate(baseline, draft, cohort, months=12, start=date(2027, 1, 1),
                      promotions=rules.RulePromotions(runtime, memo=True))
    result.totals["delta"], result.by_month, result.movers(10), result.customers_csv()
    result.discounts, result.warnings   # discounts per source; changes the cohort cannot exercise

Metrics a synthetic spec leaves out get each plan's typical usage (docs/console.md, "Synthetic
usage"). With `promotions` (the pricing rules in force) and `draft_promotions` (proposed
ones), each period is priced as a quote is (`engine.pricing.quoting.period_document`).

Cohorts also come from a CSV (`cohort_from_csv`) or from rows the caller reads from the store
(`cohort_from_records`; the console reads them through engine.sales).
"""

from engine.simulation.cohort import Cohort, SimCustomer
from engine.simulation.csv_file import CSV_FIXED, CSV_REQUIRED, cohort_from_csv
from engine.simulation.distribution import Distribution
from engine.simulation.entitlements import feature_changes
from engine.simulation.errors import CohortError, SimulationError
from engine.simulation.exercised import unexercised
from engine.simulation.lifecycle import LifecycleResult
from engine.simulation.lifecycle_inputs import CardModel
from engine.simulation.moves import Share, assign, parse_move, parse_share
from engine.simulation.observed import Observed, observed_usage
from engine.simulation.prepaid import Prepaid, parse_prepaid
from engine.simulation.records import cohort_from_records
from engine.simulation.result import SimulationResult
from engine.simulation.run import simulate
from engine.simulation.side import month_start
from engine.simulation.spec import SyntheticSpec, spec_from_dict
from engine.simulation.synthetic import synthetic_cohort
from engine.simulation.typical import typical_usage

__all__ = [
    "CSV_FIXED",
    "CSV_REQUIRED",
    "CardModel",
    "Cohort",
    "CohortError",
    "Distribution",
    "LifecycleResult",
    "Observed",
    "Prepaid",
    "Share",
    "SimCustomer",
    "SimulationError",
    "SimulationResult",
    "SyntheticSpec",
    "assign",
    "cohort_from_csv",
    "cohort_from_records",
    "feature_changes",
    "month_start",
    "observed_usage",
    "parse_move",
    "parse_prepaid",
    "parse_share",
    "simulate",
    "spec_from_dict",
    "synthetic_cohort",
    "typical_usage",
    "unexercised",
]
