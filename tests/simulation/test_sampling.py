"""The lifecycle what-if's sample of a large cohort: stratified by plan and joining, every
stratum represented, weights that add back up to the cohort, and an estimate whose 95 %
margin covers the true total."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.catalog import load_catalog
from engine.simulation import Distribution, SyntheticSpec, synthetic_cohort
from engine.simulation.sampling import margin95, stratified_sample

SAAS = Path(__file__).resolve().parents[2] / "catalogs" / "saas.yaml"


def _cohort(count: int):  # type: ignore[no-untyped-def]
    spec = SyntheticSpec(count=count, plan_mix={"free": 1, "pro": 3, "enterprise": 0.2},
                         seats=Distribution("uniform", low=1, high=40), growth=0.02, churn=0.02, months=12)
    return synthetic_cohort(spec, load_catalog(SAAS))


def test_a_large_cohort_is_sampled_by_stratum_and_weighted_back_up() -> None:
    cohort = _cohort(10_000)
    sample = stratified_sample(cohort, 200)
    assert sample.scaled and 190 <= len(sample.cohort.customers) <= 215
    assert {c.plan for c in sample.cohort.customers} == {"free", "pro", "enterprise"}
    assert any(c.joined > 0 for c in sample.cohort.customers)  # joiners have their own stratum
    assert round(sum(sample.weights.values())) == len(cohort.customers)
    assert f"of the {len(cohort.customers):,} customers" in sample.sentence()
    # The seats of the whole cohort, estimated from the sample: within the 95 % margin.
    truth = sum(c.quantity for c in cohort.customers)
    seats = {c.id: c.quantity for c in sample.cohort.customers}
    estimate = sum(seats[cid] * w for cid, w in sample.weights.items())
    margin = margin95(sample, seats)
    assert Decimal(0) < margin < truth / 10
    assert abs(estimate - truth) <= margin


def test_a_small_cohort_runs_whole_and_says_so() -> None:
    cohort = _cohort(50)
    sample = stratified_sample(cohort, 200)
    assert not sample.scaled and sample.cohort is cohort
    assert set(sample.weights.values()) == {Decimal(1)}
    assert margin95(sample, {c.id: c.quantity for c in cohort.customers}) == 0
    assert sample.sentence().startswith(f"every one of the {len(cohort.customers)} customers")


def test_the_same_seed_draws_the_same_sample() -> None:
    cohort = _cohort(2_000)
    ids = [c.id for c in stratified_sample(cohort, 150).cohort.customers]
    assert ids == [c.id for c in stratified_sample(cohort, 150).cohort.customers]
    assert ids != [c.id for c in stratified_sample(cohort, 150, seed=14).cohort.customers]
