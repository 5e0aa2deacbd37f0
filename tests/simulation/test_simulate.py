"""The what-if engine: totals worked out by hand, batch == one-by-one quotes, bad input."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from engine.catalog import load_catalog, load_catalog_text
from engine.periods import Period
from engine.pricing import MetricUsage, price_period
from engine.simulation import (
    CohortError,
    Distribution,
    SimulationError,
    SyntheticSpec,
    cohort_from_csv,
    cohort_from_records,
    simulate,
    synthetic_cohort,
)
from engine.simulation.cohort import Cohort

SAAS = "catalogs/saas.yaml"
START = date(2027, 1, 1)


@pytest.fixture(scope="module")
def baseline():  # type: ignore[no-untyped-def]
    return load_catalog(SAAS)


@pytest.fixture(scope="module")
def draft():  # type: ignore[no-untyped-def]
    text = Path(SAAS).read_text()
    assert text.count('"0.002"') == 1
    # Pro's second API tier: 0.002 -> 0.003 per call.
    return load_catalog_text(text.replace('"0.002"', '"0.003"'), "draft.yaml")


def three_customers() -> Cohort:
    return cohort_from_records(
        [
            {"customer_id": "a", "plan": "pro", "quantity": 3, "segment": "smb", "usage": {"api_calls": 15000}},
            {"customer_id": "b", "plan": "free", "segment": "smb", "usage": {"api_calls": 800}},
            {"customer_id": "c", "plan": "enterprise", "quantity": "10", "segment": "ent"},
        ]
    )


def test_known_totals_by_hand(baseline, draft) -> None:  # type: ignore[no-untyped-def]
    # a: 49 base + 3 x 10 seats + 5,000 calls x 0.002 = 89.00; draft 0.003 -> 94.00
    # b: free = 0
    # c: 1,500 platform + 10 seats x 25 = 1,750, below the 2,000 minimum -> 2,000.00 both
    r = simulate(baseline, draft, three_customers(), months=3, start=date(2027, 1, 15))
    assert r.months == ["2027-01", "2027-02", "2027-03"]
    assert [m["baseline"] for m in r.by_month] == [Decimal("2089.00")] * 3
    assert [m["draft"] for m in r.by_month] == [Decimal("2094.00")] * 3
    assert r.totals["baseline"] == Decimal("6267.00")
    assert r.totals["draft"] == Decimal("6282.00")
    assert r.totals["delta"] == Decimal("15.00")
    assert r.customer_months == 9
    plans = {p["plan"]: p for p in r.by_plan}
    assert plans["pro"]["delta"] == Decimal("15.00") and plans["enterprise"]["delta"] == 0
    segments = {s["segment"]: s for s in r.by_segment}
    assert segments["smb"]["baseline"] == Decimal("267.00") and segments["ent"]["draft"] == Decimal("6000.00")
    assert [c["customer_id"] for c in r.movers(more=True)] == ["a"]
    assert r.movers(more=False) == []
    assert r.totals["pay_more"] == 1 and r.totals["pay_less"] == 0
    csv_text = r.customers_csv()
    assert csv_text.splitlines()[0] == "customer_id,plan,draft_plan,segment,quantity,months,baseline,draft,delta"
    assert "a,pro,pro,smb,3,3,267.00,282.00,15.00" in csv_text
    assert r.to_dict()["totals"]["delta"] == "15.00"


def test_batch_equals_one_by_one_quotes(baseline, draft) -> None:  # type: ignore[no-untyped-def]
    spec = SyntheticSpec(
        count=300,
        plan_mix={"free": 1, "pro": 3, "enterprise": 1},
        usage={
            "api_calls": Distribution("lognormal", median=30000, sigma=1.5),
            "gpu_hours": Distribution("uniform", low=0, high=50),
            "storage_gb": Distribution("lognormal", median=40, sigma=1),
        },
        seats=Distribution("uniform", low=1, high=60),
        growth=0.05,
        churn=0.03,
        usage_growth=0.02,
        months=4,
    )
    cohort = synthetic_cohort(spec, baseline)
    r = simulate(baseline, draft, cohort, months=4, start=START)
    expected_b = expected_d = Decimal(0)
    per_customer: dict[str, Decimal] = {}
    for m in range(4):
        period = Period(date(2027, 1 + m, 1), date(2027, 2 + m, 1))
        factor = Decimal("1.02") ** m
        for c in cohort.customers:
            if not c.active(m):
                continue
            usage = {}
            for k, q in c.usage.items():
                v = q * factor
                v = v.quantize(Decimal(1) if k == "api_calls" else Decimal("0.01"), "ROUND_HALF_UP")
                usage[k] = MetricUsage(v)
            b = price_period(baseline, baseline.plan(c.plan), period, quantity=c.quantity, usage=usage).total
            d = price_period(draft, draft.plan(c.plan), period, quantity=c.quantity, usage=usage).total
            expected_b += b
            expected_d += d
            per_customer[c.id] = per_customer.get(c.id, Decimal(0)) + d - b
    assert r.totals["baseline"] == expected_b
    assert r.totals["draft"] == expected_d
    assert {c["customer_id"]: c["delta"] for c in r.customers} == per_customer
    assert len(cohort) > 300  # growth added customers
    assert any(c.left is not None for c in cohort.customers)  # churn removed some


def test_annual_plan_bills_once_a_year(baseline) -> None:  # type: ignore[no-untyped-def]
    cohort = cohort_from_records([{"customer_id": "y", "plan": "pro-annual", "quantity": 2}])
    r = simulate(baseline, baseline, cohort, months=13, start=START)
    # 490 + 2 x 100 in January 2027 and again in January 2028.
    assert [m["baseline"] for m in r.by_month if m["baseline"]] == [Decimal("690.00"), Decimal("690.00")]
    assert r.by_month[0]["month"] == "2027-01" and r.by_month[12]["month"] == "2028-01"


def test_quota_and_lost_features(baseline) -> None:  # type: ignore[no-untyped-def]
    text = Path(SAAS).read_text()
    # The draft takes SSO out of Pro and lowers its API limit to 20,000 a month.
    text = text.replace(
        "      sso: true\n      projects: 20\n      data_export: true\n      api: {limit: 100000",
        "      projects: 20\n      data_export: true\n      api: {limit: 20000",
        1,
    )
    draft = load_catalog_text(text, "draft.yaml")
    cohort = cohort_from_records(
        [
            {"customer_id": "p1", "plan": "pro", "usage": {"api_calls": 15000}},
            {"customer_id": "p2", "plan": "pro", "usage": {"api_calls": 50000}},
            {"customer_id": "f1", "plan": "free", "usage": {"api_calls": 5000}},
        ]
    )
    r = simulate(baseline, draft, cohort, months=2, start=START)
    quota = {q["feature"]: q for q in r.quota}
    assert quota["api"]["baseline_over_limit"] == 1  # the free customer over 1,000 (blocked)
    assert quota["api"]["baseline_blocked"] == 1
    assert quota["api"]["draft_over_limit"] == 2  # and p2 over the new 20,000
    assert quota["api"]["newly_over_limit"] == 1
    changes = {(f["plan"], f["feature"]): f for f in r.features}
    assert changes[("pro", "sso")]["change"] == "lost" and changes[("pro", "sso")]["customers"] == 2
    assert changes[("pro", "api")]["change"] == "reduced"


def test_csv_cohort(baseline, draft) -> None:  # type: ignore[no-untyped-def]
    text = "customer_id,plan,quantity,segment,api_calls\na,pro,3,smb,15000\nb,free,,smb,800\n"
    cohort = cohort_from_csv(text.encode(), [baseline, draft])
    r = simulate(baseline, draft, cohort, months=1, start=START)
    assert r.totals["baseline"] == Decimal("89.00") and r.totals["draft"] == Decimal("94.00")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("plan,api_calls\npro,5\n", "missing column 'customer_id'"),
        ("customer_id,plan,color\na,pro,red\n", "column 'color' is not a metric"),
        ("customer_id,plan,api_calls\na,pro,lots\n", "line 2: api_calls: 'lots' is not a number"),
        ("customer_id,plan,quantity\na,pro,-1\n", "line 2: quantity: '-1' is negative"),
        ("customer_id,plan\na,gold\n", "line 2: plan 'gold' is not in the baseline"),
        ("customer_id,plan\na,pro\na,pro\n", "line 3: customer_id 'a' appears twice"),
        ("customer_id,plan\n", "no customers"),
        ("", "the file is empty"),
        ("customer_id,plan\na,pro,3\n", "line 2: 3 values for 2 columns"),
    ],
)
def test_bad_csv(baseline, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CohortError) as exc:
        cohort_from_csv(text, [baseline])
    assert message in str(exc.value)


def test_zero_and_bad_synthetic(baseline) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CohortError, match="cohort of zero"):
        synthetic_cohort(SyntheticSpec(count=0, plan_mix={"pro": 1}), baseline)
    with pytest.raises(CohortError) as exc:
        synthetic_cohort(
            SyntheticSpec(count=5, plan_mix={"gold": 1}, usage={"nope": Distribution()}, churn=1.5), baseline
        )
    text = str(exc.value)
    assert "plan_mix.gold" in text and "usage.nope" in text and "churn" in text
    with pytest.raises(CohortError, match="no customers"):
        simulate(baseline, baseline, Cohort([]), months=1, start=START)


def test_plan_missing_from_draft(baseline) -> None:  # type: ignore[no-untyped-def]
    draft = load_catalog_text(
        "catalog: other\ncurrency: USD\nplans:\n  basic: {name: Basic, interval: month, prices: [{id: b, model: flat, amount: '5'}]}\n"
    )
    cohort = cohort_from_records([{"customer_id": "a", "plan": "pro"}])
    with pytest.raises(SimulationError, match="plan 'pro' is not in the draft"):
        simulate(baseline, draft, cohort, months=1, start=START)
    r = simulate(baseline, draft, cohort, months=1, start=START, plan_map={"pro": "basic"})
    assert r.totals["draft"] == Decimal("5.00") and r.customers[0]["draft_plan"] == "basic"


def test_spec_from_dict(baseline) -> None:  # type: ignore[no-untyped-def]
    from engine.simulation import spec_from_dict

    spec = spec_from_dict(
        {
            "count": 20,
            "plan_mix": {"pro": 1},
            "usage": {"api_calls": {"kind": "lognormal", "median": 20000, "sigma": 0.5}, "gpu_hours": 3},
            "seats": {"kind": "uniform", "low": 1, "high": 5},
            "churn": 0.1,
            "months": 6,
        }
    )
    cohort = synthetic_cohort(spec, baseline)
    assert len([c for c in cohort.customers if c.joined == 0]) == 20
    assert all(c.usage["gpu_hours"] == Decimal("3.0") for c in cohort.customers)
    with pytest.raises(CohortError, match="unknown field"):
        spec_from_dict({"count": 1, "plan_mix": {"pro": 1}, "colour": "red"})
    with pytest.raises(CohortError, match="required"):
        spec_from_dict({"count": 1})


def test_typical_usage_follows_each_plan(baseline) -> None:  # type: ignore[no-untyped-def]
    """docs/console.md, "Synthetic usage": the medians of the SaaS example."""
    from engine.simulation import typical_usage

    medians = {p: {m: d.median for m, d in typical_usage(baseline, baseline.plans[p]).items()} for p in baseline.plans}
    assert medians["pro"] == {"api_calls": 15000}
    assert medians["free"] == {"api_calls": 500}
    assert medians["enterprise"] == {"api_calls": 1_500_000, "gpu_hours": 100, "storage_gb": 100}
    spec = SyntheticSpec(count=400, plan_mix={"pro": 1}, months=1)
    calls = sorted(c.usage["api_calls"] for c in synthetic_cohort(spec, baseline).customers)
    assert Decimal(10000) < calls[len(calls) // 2] < Decimal(22000)  # around the median, most in paid tiers
    assert calls[-1] > Decimal(50000) and calls[0] < Decimal(10000)  # a spread both ways
    assert [c.usage for c in synthetic_cohort(spec, baseline).customers][:5] == [
        c.usage for c in synthetic_cohort(spec, baseline).customers
    ][:5]
    none = synthetic_cohort(SyntheticSpec(count=5, plan_mix={"pro": 1}, default_usage="none"), baseline)
    assert all(not c.usage for c in none.customers)
