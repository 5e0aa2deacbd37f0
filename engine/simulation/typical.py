"""A plan's typical monthly usage of the metrics it reads, for those a synthetic cohort's spec
leaves out (docs/console.md, "Synthetic usage"): a lognormal spread around what the plan
includes, its tiers or its quota. Moved from engine.simulation.cohort."""

from __future__ import annotations

from decimal import Decimal

from engine.catalog.model import Catalog, Plan, Price
from engine.simulation.distribution import Distribution

# The spread of typical usage: two customers in three within a factor e^0.8 (2.2) of the median.
TYPICAL_SIGMA = 0.8
# A customer with nothing included for free typically uses this much of a metric a month.
TYPICAL_UNPRICED = 100


def plan_metrics(catalog: Catalog, plan: Plan) -> list[str]:
    """The metrics a plan's bill or quotas read: its usage prices and metered entitlements."""
    found = {p.metric for p in plan.prices if p.metric}
    for fid, e in plan.entitlements.items():
        feature = catalog.features.get(fid)
        if e.enabled and feature is not None and feature.type == "metered" and feature.metric:
            found.add(feature.metric)
    return sorted(m for m in found if m in catalog.metrics)


def _included(price: Price) -> Decimal:
    """How much of a metric the price gives for nothing: free units, or the first tiers
    that cost nothing."""
    free = Decimal(price.free_units)
    for tier in price.tiers:
        if tier.unit_amount or tier.flat_amount or tier.rate or tier.up_to is None:
            break
        free = max(free, tier.up_to)
    return free


def typical_median(catalog: Catalog, plan: Plan, metric: str) -> float:
    """The median of a plan's typical monthly usage of a metric (docs/console.md,
    "Synthetic cohort"): half again what the plan includes for free, so most customers use
    some paid units and a tail reaches the upper tiers; without anything free, the first
    tier's bound; without tiers, half the plan's quota (a quota that blocks is seldom hit);
    else TYPICAL_UNPRICED."""
    prices = [p for p in plan.prices if p.metric == metric]
    included = max((_included(p) for p in prices), default=Decimal(0))
    if included > 0:
        return float(included * Decimal("1.5"))
    bounds = [t.up_to for p in prices for t in p.tiers if t.up_to is not None]
    if bounds:
        return float(min(bounds))
    limits = _quota_limits(catalog, plan, metric)
    if limits:
        return min(limits) / 2
    return float(TYPICAL_UNPRICED)


def _quota_limits(catalog: Catalog, plan: Plan, metric: str) -> list[int]:
    """The limits of the plan's enabled entitlements on features that count the metric."""
    return [
        e.limit
        for fid, e in plan.entitlements.items()
        if e.enabled and e.limit and (f := catalog.features.get(fid)) is not None and f.metric == metric
    ]


def typical_usage(catalog: Catalog, plan: Plan) -> dict[str, Distribution]:
    """Per metric the plan reads, a lognormal spread around `typical_median` (seeded draws
    make it reproducible)."""
    return {
        m: Distribution("lognormal", median=typical_median(catalog, plan, m), sigma=TYPICAL_SIGMA)
        for m in plan_metrics(catalog, plan)
    }
