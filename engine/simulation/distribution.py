"""How a figure is spread over a cohort: `Distribution` (constant, uniform or lognormal), its
checks, its seeded draws and its parsing from plain data. Moved from
engine.simulation.cohort."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.simulation.errors import CohortError

# What each kind of distribution needs of its figures.
_NEEDS = {
    "constant": "value must be 0 or more",
    "uniform": "uniform needs 0 <= low <= high",
    "lognormal": "lognormal needs median >= 0 and sigma >= 0",
}


@dataclass(frozen=True)
class Distribution:
    """How a figure is spread over a cohort: constant(value), uniform(low, high) or
    lognormal(median, sigma) — most customers near the median, a long tail of heavy users."""

    kind: str = "constant"
    value: float = 0.0  # constant
    low: float = 0.0  # uniform
    high: float = 0.0
    median: float = 0.0  # lognormal
    sigma: float = 1.0

    def problems(self, where: str) -> list[str]:
        if self.kind not in _NEEDS:
            return [f"{where}: kind is constant, uniform or lognormal, not {self.kind!r}"]
        figures = (self.value, self.low, self.high, self.median, self.sigma)
        if any(not math.isfinite(x) for x in figures):
            return [f"{where}: every figure must be a finite number"]
        invalid = {
            "constant": self.value < 0,
            "uniform": not 0 <= self.low <= self.high,
            "lognormal": self.median < 0 or self.sigma < 0,
        }
        return [f"{where}: {_NEEDS[self.kind]}"] if invalid[self.kind] else []

    def draw(self, rng: random.Random) -> float:
        if self.kind == "constant":
            return self.value
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.median == 0:
            return 0.0
        return self.median * math.exp(rng.gauss(0.0, self.sigma))

    @classmethod
    def parse(cls, value: Any) -> Distribution:
        """From a number (constant) or a mapping {kind, ...}."""
        if isinstance(value, Distribution):
            return value
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return cls("constant", value=float(value))
        if isinstance(value, Mapping):
            allowed = {"kind", "value", "low", "high", "median", "sigma"}
            unknown = set(value) - allowed
            if unknown:
                raise CohortError([f"unknown distribution field(s) {', '.join(sorted(unknown))}"])
            try:
                return cls(str(value.get("kind", "constant")), **{k: float(v) for k, v in value.items() if k != "kind"})
            except (TypeError, ValueError):
                raise CohortError([f"distribution {dict(value)!r}: figures must be numbers"]) from None
        raise CohortError([f"{value!r} is not a distribution (a number or {{kind, ...}})"])
