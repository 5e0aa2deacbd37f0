"""What a synthetic cohort is asked for: `SyntheticSpec` (count, plan mix, seats and usage
distributions, growth, churn, months, seed), its checks field by field, and
`spec_from_dict` for a YAML or JSON file. Moved from engine.simulation.cohort."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.catalog.model import Catalog
from engine.simulation.cohort import MAX_CUSTOMERS, MAX_MONTHS
from engine.simulation.distribution import Distribution
from engine.simulation.errors import CohortError
from engine.simulation.observed import ObservedUsage

DEFAULT_USAGE = ("typical", "none")


@dataclass
class SyntheticSpec:
    """A made-up cohort: `count` customers at the start, `plan_mix` weights, seat and usage
    distributions, `growth` (new customers a month, as a share of the active ones) and `churn`
    (the share that leaves each month). Metrics `usage` does not name get each plan's typical
    usage (`typical_usage`), or none with `default_usage="none"`; `seed` makes it reproducible."""

    count: int
    plan_mix: dict[str, float]
    usage: dict[str, Distribution] = field(default_factory=dict)
    seats: Distribution = field(default_factory=lambda: Distribution("constant", value=1))
    growth: float = 0.0
    churn: float = 0.0
    usage_growth: float = 0.0
    segments: dict[str, float] = field(default_factory=dict)
    months: int = 12
    seed: int = 7
    # Metrics `usage` leaves out: "typical" draws them around each plan's included quota and
    # tiers (`typical_usage`), "none" leaves them at zero.
    default_usage: str = "typical"
    # The store's real usage per plan and metric (engine.simulation.observed): drawn before
    # typical usage for the metrics `usage` leaves out.
    observed: ObservedUsage = field(default_factory=dict)
    # Set when the store was read (even if it had nothing): the sentences then say "no stored usage".
    store_read: bool = False

    def problems(self, catalog: Catalog | None = None) -> list[str]:
        """What is wrong with the spec, field by field, in the order of the fields."""
        out = _count_problems(self.count) + _mix_problems(self.plan_mix)
        if catalog is not None:
            out += _catalog_problems(self, catalog)
        for m, d in self.usage.items():
            out.extend(d.problems(f"usage.{m}"))
        if self.default_usage not in DEFAULT_USAGE:
            out.append(f"default_usage: {' or '.join(DEFAULT_USAGE)}, not {self.default_usage!r}")
        out.extend(self.seats.problems("seats"))
        out += _rate_problems(self)
        if any(not isinstance(w, int | float) or w < 0 for w in self.segments.values()):
            out.append("segments: weights are numbers, 0 or more")
        if _not_int(self.months) or not 1 <= self.months <= MAX_MONTHS:
            out.append(f"months: between 1 and {MAX_MONTHS}")
        return out


def _not_int(value: object) -> bool:
    """True for anything but a whole number (a JSON true is not 1)."""
    return isinstance(value, bool) or not isinstance(value, int)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _count_problems(count: int) -> list[str]:
    if _not_int(count):
        return ["count: a whole number of customers"]
    if count <= 0:
        return ["count: a cohort of zero customers has nothing to simulate; give at least 1"]
    return [f"count: at most {MAX_CUSTOMERS:,}"] if count > MAX_CUSTOMERS else []


def _mix_problems(plan_mix: dict[str, float]) -> list[str]:
    out = [] if plan_mix else ["plan_mix: name at least one plan"]
    weights = list(plan_mix.values())
    if any(not _finite(w) or w < 0 for w in weights):
        out.append("plan_mix: weights are numbers, 0 or more")
    elif plan_mix and sum(weights) <= 0:
        out.append("plan_mix: the weights add up to 0")
    return out


def _catalog_problems(spec: SyntheticSpec, catalog: Catalog) -> list[str]:
    """Plans and metrics the spec names that the baseline does not have."""
    plans, metrics = ", ".join(sorted(catalog.plans)), ", ".join(sorted(catalog.metrics))
    return ([f"plan_mix.{p}: not a plan of the baseline ({plans})" for p in spec.plan_mix if p not in catalog.plans]
            + [f"usage.{m}: not a metric of the baseline ({metrics})" for m in spec.usage if m not in catalog.metrics])


def _rate_problems(spec: SyntheticSpec) -> list[str]:
    rates = (("churn", spec.churn, 0.0, 0.99), ("growth", spec.growth, 0.0, 10.0),
             ("usage_growth", spec.usage_growth, -0.99, 10.0))
    return [f"{name}: a monthly rate between {lo} and {hi}"
            for name, value, lo, hi in rates if not _finite(value) or not lo <= value <= hi]


_SPEC_FIELDS = {
    "count",
    "plan_mix",
    "usage",
    "seats",
    "growth",
    "churn",
    "usage_growth",
    "segments",
    "months",
    "seed",
    "default_usage",
}


def _spec_shape(data: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(plan_mix, usage) of a spec whose fields are known and whose required ones are there."""
    if not isinstance(data, Mapping):
        raise CohortError(["a synthetic cohort is a mapping with count, plan_mix, usage, ..."])
    unknown = sorted(set(data) - _SPEC_FIELDS)
    if unknown:
        raise CohortError([f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(_SPEC_FIELDS))})"])
    if "count" not in data or "plan_mix" not in data:
        raise CohortError(["count and plan_mix are required"])
    plan_mix = data.get("plan_mix")
    if not isinstance(plan_mix, Mapping):
        raise CohortError(["plan_mix: a mapping of plan id to weight"])
    usage = data.get("usage") or {}
    if not isinstance(usage, Mapping):
        raise CohortError(["usage: a mapping of metric to a distribution"])
    return plan_mix, usage


def spec_from_dict(data: Mapping[str, Any]) -> SyntheticSpec:
    """A synthetic cohort from plain data (a YAML/JSON file for `billing simulate`):
    {count, plan_mix: {plan: weight}, usage: {metric: number | {kind, ...}}, seats, growth,
    churn, usage_growth, segments, months, seed}."""
    plan_mix, usage = _spec_shape(data)
    try:
        return SyntheticSpec(
            count=data["count"],
            plan_mix={str(k): float(v) for k, v in plan_mix.items()},
            usage={str(k): Distribution.parse(v) for k, v in usage.items()},
            seats=Distribution.parse(data.get("seats", 1)),
            growth=float(data.get("growth", 0)),
            churn=float(data.get("churn", 0)),
            usage_growth=float(data.get("usage_growth", 0)),
            segments={str(k): float(v) for k, v in (data.get("segments") or {}).items()},
            months=data.get("months", 12),
            seed=int(data.get("seed", 7)),
            default_usage=str(data.get("default_usage", "typical")),
        )
    except (TypeError, ValueError) as exc:
        raise CohortError([f"not a synthetic cohort: {exc}"]) from None
