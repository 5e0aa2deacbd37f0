"""Usage drawn from what the store saw: a plan's real monthly usage of a metric, one value per
customer-month observed, resampled (a bootstrap draw: each synthetic customer-month is one
observed customer-month picked at random) so the cohort has the business's own spread,
zeros and heavy users included. The caller reads the values through engine.sales
(`usage_profile`); this package only draws from them and says where they came from.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class Observed:
    """A plan's stored monthly usage of one metric."""

    values: tuple[Decimal, ...]
    events: int
    customers: int
    months: str  # "2026-09 to 2026-11"

    def draw(self, rng: random.Random) -> Decimal:
        return self.values[rng.randrange(len(self.values))]

    def sentence(self, plan: str, metric: str) -> str:
        return (
            f"usage from {self.events:,} stored events of plan {plan}, metric {metric} "
            f"({self.customers:,} customers, {len(self.values):,} customer-months, {self.months})"
        )


ObservedUsage = Mapping[str, Mapping[str, Observed]]  # plan -> metric -> observed


class UsageRow(Protocol):
    """A row of engine.sales.usage_profile (named here: this package may not import sales)."""

    @property
    def catalog(self) -> str: ...
    @property
    def plan(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def values(self) -> tuple[Decimal, ...]: ...
    @property
    def events(self) -> int: ...
    @property
    def customers(self) -> int: ...
    @property
    def first_month(self) -> str: ...
    @property
    def last_month(self) -> str: ...


def observed_usage(rows: Iterable[UsageRow], catalog_name: str) -> dict[str, dict[str, Observed]]:
    """From engine.sales.usage_profile rows (plan, metric, values, events, customers, months):
    those of the catalog named `catalog_name`, or, when none is, of any catalog (plans and
    metrics are then matched by id)."""
    rows = list(rows)
    mine = [r for r in rows if r.catalog == catalog_name] or rows
    out: dict[str, dict[str, Observed]] = {}
    for r in mine:
        if r.values:
            out.setdefault(r.plan, {})[r.metric] = Observed(
                r.values, r.events, r.customers, f"{r.first_month} to {r.last_month}"
            )
    return out
