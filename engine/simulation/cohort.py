"""Who a what-if runs on: a cohort of customers, each with a plan, a quantity (seats), a
segment and a month's usage per metric, who join and leave at month boundaries.

Three sources, one shape: `synthetic_cohort(spec)` (count, plan mix, usage distributions,
growth and churn per month), `cohort_from_csv(text)` (an uploaded file) and
`cohort_from_records(rows)` (e.g. the customers in the store with their real usage, read by the
caller through engine.sales).

This module holds the shape (`SimCustomer`, `Cohort`, `usage_at`); the sources and what they
are made of live beside it, one job a module:

- engine.simulation.records: a cohort from plain rows, each problem naming its row;
- engine.simulation.csv_file: a cohort from an uploaded CSV, each problem naming its line;
- engine.simulation.distribution: how a figure is spread over a cohort (`Distribution`);
- engine.simulation.spec: what a synthetic cohort is asked for (`SyntheticSpec`, its checks,
  `spec_from_dict`);
- engine.simulation.typical: a plan's typical usage, for the metrics a spec leaves out;
- engine.simulation.synthetic: the synthetic cohort drawn (`synthetic_cohort`).

`CohortError` lives in engine.simulation.errors; it and `typical_usage` / `typical_median`
stay importable from here, where callers found them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.pricing import MetricUsage
from engine.simulation.errors import CohortError as CohortError
from engine.simulation.typical import typical_median as typical_median
from engine.simulation.typical import typical_usage as typical_usage

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
# Aggregations whose monthly figure adds up over a longer period (a year is 12 months of calls).
ADDITIVE = frozenset({"count", "sum", "unique_count"})
INTEGRAL = frozenset({"count", "unique_count"})
MAX_CUSTOMERS = 2_000_000
MAX_MONTHS = 120


class SimCustomer:
    """One customer of a cohort. `usage` is a month's usage per metric (Decimal)."""

    __slots__ = ("_mu", "country", "id", "joined", "left", "plan", "quantity", "segment", "usage")

    def __init__(
        self,
        id: str,
        plan: str,
        quantity: Decimal = ONE,
        usage: Mapping[str, Decimal] | None = None,
        *,
        segment: str = "",
        country: str = "",
        joined: int = 0,
        left: int | None = None,
    ) -> None:
        self.id = id
        self.plan = plan
        self.quantity = quantity
        self.usage: dict[str, Decimal] = dict(usage or {})
        self.segment = segment
        self.country = country
        self.joined = joined  # the month index it starts in
        self.left = left  # the month index it is gone from (None: stays)
        self._mu: dict[str, MetricUsage] | None = None

    def active(self, month: int) -> bool:
        return self.joined <= month and (self.left is None or month < self.left)

    def customer(self) -> dict[str, Any]:
        """The customer as pricing rules see it (`customer.segment`, `customer.country`)."""
        out: dict[str, Any] = {"id": self.id}
        if self.segment:
            out["segment"] = self.segment
        if self.country:
            out["country"] = self.country
        return out

    def metric_usage(self) -> dict[str, MetricUsage]:
        """The month's usage as the pricing engine takes it (built once)."""
        if self._mu is None:
            self._mu = {m: MetricUsage(q) for m, q in self.usage.items()}
        return self._mu

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.id,
            "plan": self.plan,
            "quantity": str(self.quantity),
            "segment": self.segment,
            "country": self.country,
            "joined": self.joined,
            "left": self.left,
            "usage": {m: str(q) for m, q in self.usage.items()},
        }

    def __repr__(self) -> str:
        return f"SimCustomer({self.id!r}, plan={self.plan!r}, quantity={self.quantity}, usage={self.usage})"


@dataclass
class Cohort:
    customers: list[SimCustomer]
    # Monthly growth of every customer's usage (0.05 = +5% a month, compounding).
    usage_growth: Decimal = ZERO
    source: str = "records"
    description: str = ""
    # Where each plan's usage of each metric came from, in words (the store, typical, as given).
    usage_notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.customers)

    def plans(self) -> set[str]:
        return {c.plan for c in self.customers}


def usage_at(c: SimCustomer, factor: Decimal, integral: frozenset[str] | set[str]) -> dict[str, MetricUsage]:
    """A customer's usage in a month whose growth factor is `factor` (1 = the base month)."""
    if factor == ONE:
        return c.metric_usage()
    out = {}
    for m, q in c.usage.items():
        v = q * factor
        v = v.quantize(ONE, ROUND_HALF_UP) if m in integral else v.quantize(CENT, ROUND_HALF_UP)
        out[m] = MetricUsage(v)
    return out
