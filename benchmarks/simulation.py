"""What-if simulation throughput: customer-months per second for a synthetic cohort on the SaaS
catalog, baseline and draft priced for every customer-month.

Baseline, in the same run: the same bills quoted one by one with `price_period` (what a
simulator without the batch path would do). Both walk the same cohort and the same usage;
the per-customer totals must be identical before any figure is printed.
Target (issue 9): 100,000 customers x 12 months in under 60 s on one core.
Target (issue 18): with the shipped pricing rules (rules/, as the console and `billing simulate`
price by default), 10,000 customers x 12 months in under 10 s: measured in the same run on the
first 10,000 customers of the cohort (CPU seconds; on the shared machine the wall clock also
counts other processes).

    .venv/bin/python benchmarks/simulation.py [--customers 100000] [--months 12] [--rules-customers 10000]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

from dateutil.relativedelta import relativedelta

from engine import rules
from engine.catalog import load_catalog, load_catalog_text
from engine.periods import Period
from engine.pricing import price_period
from engine.simulation import Cohort, Distribution, SyntheticSpec, simulate, synthetic_cohort
from engine.simulation.cohort import INTEGRAL, ONE, usage_at

ROOT = Path(__file__).resolve().parents[1]
START = date(2027, 1, 1)


def one_by_one(baseline, draft, cohort, months: int) -> tuple[dict[str, Decimal], dict[str, Decimal], int]:  # type: ignore[no-untyped-def]
    """Every bill quoted on its own: one price_period call per customer, month and catalog."""
    integral = {m for m, x in baseline.metrics.items() if x.aggregation in INTEGRAL}
    growth = ONE + cohort.usage_growth
    tb: dict[str, Decimal] = {}
    td: dict[str, Decimal] = {}
    n = 0
    for m in range(months):
        month = Period(START + relativedelta(months=m), START + relativedelta(months=m + 1))
        factor = growth**m
        for c in cohort.customers:
            if not c.active(m):
                continue
            n += 1
            usage = usage_at(c, factor, integral)
            totals = []
            for catalog in (baseline, draft):
                plan = catalog.plan(c.plan)
                if plan.interval == "year":  # billed once a year from the month it starts
                    if (m - c.joined) % 12:
                        totals.append(Decimal(0))
                        continue
                    period = Period(month.start, month.start + relativedelta(years=1))
                else:
                    period = month
                totals.append(price_period(catalog, plan, period, quantity=c.quantity, usage=usage).total)
            tb[c.id] = tb.get(c.id, Decimal(0)) + totals[0]
            td[c.id] = td.get(c.id, Decimal(0)) + totals[1]
    return tb, td, n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--rules-customers", type=int, default=10_000)
    args = parser.parse_args()
    baseline = load_catalog(ROOT / "catalogs/saas.yaml")
    text = (ROOT / "catalogs/saas.yaml").read_text()
    # The draft: Pro's second API tier 0.002 -> 0.003, Enterprise's platform fee 1500 -> 1600.
    draft = load_catalog_text(
        text.replace('"0.002"', '"0.003"').replace('amount: "1500.00"', 'amount: "1600.00"'), "draft.yaml"
    )
    spec = SyntheticSpec(
        count=args.customers,
        plan_mix={"free": 2, "pro": 5, "enterprise": 1, "pro-annual": 1},
        usage={
            "api_calls": Distribution("lognormal", median=20000, sigma=1.2),
            "gpu_hours": Distribution("uniform", low=0, high=100),
            "storage_gb": Distribution("lognormal", median=50, sigma=1),
        },
        seats=Distribution("uniform", low=1, high=40),
        usage_growth=0.01,  # usage differs every month: no bill is reused
        months=args.months,
        segments={"smb": 3, "mid": 2, "edu": 1},
    )
    t0 = time.perf_counter()
    cohort = synthetic_cohort(spec, baseline)
    cohort_s = time.perf_counter() - t0

    t0, c0 = time.perf_counter(), time.process_time()
    result = simulate(baseline, draft, cohort, months=args.months, start=START)
    ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    tb, td, n = one_by_one(baseline, draft, cohort, args.months)
    base_s, base_cpu = time.perf_counter() - t0, time.process_time() - c0

    # With the pricing rules in force (a memoising RulePromotions, as the console and CLI use).
    promotions = rules.RulePromotions(rules.pricing_runtime(rules.ruleset_texts(str(ROOT / "rules"))), memo=True)
    part = Cohort(cohort.customers[: args.rules_customers], cohort.usage_growth, cohort.source)
    t0, c0 = time.perf_counter(), time.process_time()
    with_rules = simulate(baseline, draft, part, months=args.months, start=START, promotions=promotions)
    rules_s, rules_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert with_rules.totals["baseline_discount"] > 0, "the shipped rules gave no discount: nothing measured"

    # Same answers, customer by customer, or no figures.
    assert n == result.customer_months, (n, result.customer_months)
    got = {c["customer_id"]: (c["baseline"], c["draft"]) for c in result.customers}
    assert got == {k: (tb[k], td[k]) for k in tb}, "simulation differs from one-by-one quotes"
    assert result.totals["baseline"] == sum(tb.values()) and result.totals["draft"] == sum(td.values())

    ours_rate = n / ours_s
    base_rate = n / base_s
    print(
        f"cohort: {len(cohort):,} customers x {args.months} months = {n:,} customer-months (drawn in {cohort_s:.1f} s)"
    )
    print(f"simulation (batch):   {ours_s:6.1f} s  {ours_rate:>10,.0f} customer-months/s (baseline + draft bills)")
    print(f"one-by-one quotes:    {base_s:6.1f} s  {base_rate:>10,.0f} customer-months/s")
    print(
        f"with pricing rules:   {rules_s:6.1f} s ({rules_cpu:.1f} s CPU) for {len(part):,} customers x {args.months} "
        f"months, discounts {with_rules.totals['baseline_discount']:,} USD"
    )
    print(
        f"revenue: baseline {result.totals['baseline']:,} draft {result.totals['draft']:,} delta {result.totals['delta']:,} USD"
    )
    print(
        json.dumps(
            {
                "benchmark": "simulation",
                "customers": args.customers,
                "months": args.months,
                "customer_months": n,
                "seconds": round(ours_s, 2),
                "cpu_seconds": round(ours_cpu, 2),
                "customer_months_per_s": round(ours_rate),
                "baseline_seconds": round(base_s, 2),
                "baseline_cpu_seconds": round(base_cpu, 2),
                "baseline_per_s": round(base_rate),
                "ratio": round(ours_rate / base_rate, 3),
                "identical": True,
                "target": 60,
                "target_note": "seconds for 100,000 customers x 12 months on one core",
                # CPU time: on a shared machine the wall clock also counts other processes.
                "meets_target": ours_cpu * (1_200_000 / n) < 60,
                "rules_customers": len(part),
                "rules_seconds": round(rules_s, 2),
                "rules_cpu_seconds": round(rules_cpu, 2),
                "rules_target": 10,
                "rules_meets_target": rules_cpu < 10,
            }
        )
    )


if __name__ == "__main__":
    main()
