"""Lifecycle what-if throughput: customer-months per second when a synthetic cohort runs through
the engine (billing, card payments with declines, the dunning and notification rules, the
scheduler, messaging) on a test clock, baseline and draft, as the console's Lifecycle view does.

Baseline, in the same run: the same cohort through the same engine with billing alone (no
payments, no rulesets), i.e. what subscriptions and invoices cost before collection, dunning
and messaging join. `ratio` = lifecycle rate / billing-alone rate.
Target (issue 9): "reasonably fast for a few hundred customers over a few months": 300
customers x 3 months, both sides, within 120 s on the shared 2-core machine; the ratio target
says the lifecycle pieces cost at most 4x the billing they follow.

    .venv/bin/python benchmarks/lifecycle.py [--customers 150] [--months 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

from engine.catalog import load_catalog
from engine.clock import TestClock
from engine.config import Settings
from engine.console import CardModel, lifecycle_on_engine
from engine.console.lifecycle import run_side
from engine.payments import PaymentService
from engine.simulation import Distribution, SyntheticSpec, synthetic_cohort
from engine.store import Database
from engine.system import System, build_system, lifecycle_system

ROOT = Path(__file__).resolve().parents[1]
START = date(2027, 1, 1)


def billing_only(settings: Settings, clock: TestClock, db: Database, service: PaymentService) -> System:
    # The provider exists (cards can be stored), but nothing collects.
    return build_system(settings, clock=clock, db=db, payments=None)  # no payments, no scheduler, no automation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=150)
    parser.add_argument("--months", type=int, default=2)
    args = parser.parse_args()
    saas = load_catalog(ROOT / "catalogs/saas.yaml")
    rules = {p.stem: p.read_text() for p in sorted((ROOT / "rules").glob("*.yaml"))}
    spec = SyntheticSpec(
        count=args.customers,
        plan_mix={"free": 1, "pro": 3, "enterprise": 0.2},
        usage={"api_calls": Distribution("lognormal", median=20000, sigma=1)},
        growth=0.02,
        churn=0.02,
        months=args.months,
    )
    cohort = synthetic_cohort(spec, saas)
    customer_months = sum(1 for c in cohort.customers for m in range(args.months) if c.active(m))

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as folder:
        for label in ("baseline", "draft"):
            plans = {p: p for p in cohort.plans()}
            run_side(billing_only, saas, {}, cohort, plans, months=args.months, start=START,
                     cards=CardModel(failure_rate=0), folder=Path(folder), label=label)
    base_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = lifecycle_on_engine(lifecycle_system, saas, saas, cohort, rulesets=rules, months=args.months, start=START,
                                 cards=CardModel(failure_rate=0.05, recovery_rate=0.5))
    ours_s = time.perf_counter() - t0

    t = result.totals["draft"]
    print(f"lifecycle: {t['invoices']} invoices, {t['collected']} collected, {t['failed_payments']} declines, "
          f"{t['notifications']} notifications per side")
    ours_rate, base_rate = 2 * customer_months / ours_s, 2 * customer_months / base_s
    print(json.dumps({
        "benchmark": "lifecycle",
        "customers": len(cohort.customers),
        "months": args.months,
        "customer_months_both_sides": 2 * customer_months,
        "seconds": round(ours_s, 1),
        "customer_months_per_s": round(ours_rate, 1),
        "baseline_seconds": round(base_s, 1),
        "baseline_per_s": round(base_rate, 1),
        "ratio": round(ours_rate / base_rate, 3),
        "target": 0.25,
        "target_note": "lifecycle at least 1/4 of billing alone; 300 customers x 3 months within 120 s",
    }))


if __name__ == "__main__":
    main()
