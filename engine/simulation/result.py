"""What a what-if answers (`SimulationResult`): the figures by month, plan, segment and
customer, the movers, and the CSV and JSON (`billing simulate --json`) they are read as.
Moved from engine.simulation.run."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any


@dataclass
class SimulationResult:
    currency: str
    start: date
    months: list[str]
    baseline_name: str
    draft_name: str
    cohort: str
    customer_months: int
    by_month: list[dict[str, Any]]
    by_month_plan: list[dict[str, Any]]
    by_plan: list[dict[str, Any]]
    by_segment: list[dict[str, Any]]
    customers: list[dict[str, Any]]
    quota: list[dict[str, Any]]
    features: list[dict[str, Any]]
    totals: dict[str, Any]
    discounts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Where the cohort's usage came from, one sentence per plan and metric (never a silent zero).
    usage_source: list[str] = field(default_factory=list)
    # Credit packs (engine.simulation.prepaid): {pack, share, top_up, baseline: {...}, draft: {...}}.
    prepaid: dict[str, Any] | None = None
    # Progressive billing (engine.simulation.early): {baseline: {...}, draft: {...}}.
    progressive: dict[str, Any] | None = None

    def movers(self, n: int = 10, *, more: bool = True) -> list[dict[str, Any]]:
        """The customers who would pay most more (or, with more=False, most less) under the draft."""
        rows = [c for c in self.customers if (c["delta"] > 0 if more else c["delta"] < 0)]
        rows.sort(key=lambda c: (-c["delta"] if more else c["delta"], c["customer_id"]))
        return rows[:n]

    def customers_csv(self) -> str:
        out = io.StringIO()
        cols = ["customer_id", "plan", "draft_plan", "segment", "quantity", "months", "baseline", "draft", "delta"]
        w = csv.DictWriter(out, cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for c in self.customers:
            w.writerow(c)
        return out.getvalue()

    def months_csv(self) -> str:
        out = io.StringIO()
        cols = ["month", "customers", "baseline", "draft", "delta", "mrr_baseline", "mrr_draft"]
        w = csv.DictWriter(out, cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in self.by_month:
            w.writerow(r)
        return out.getvalue()

    def to_dict(self, *, customers: int = 10) -> dict[str, Any]:
        """JSON-ready summary (amounts as strings): what `billing simulate --json` prints."""

        def s(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in rows]

        return {
            "currency": self.currency,
            "start": self.start.isoformat(),
            "months": self.months,
            "baseline": self.baseline_name,
            "draft": self.draft_name,
            "cohort": self.cohort,
            "customer_months": self.customer_months,
            "totals": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.totals.items()},
            "by_month": s(self.by_month),
            "by_plan": s(self.by_plan),
            "by_segment": s(self.by_segment),
            "pay_more": s(self.movers(customers, more=True)),
            "pay_less": s(self.movers(customers, more=False)),
            "quota": s(self.quota),
            "features": s(self.features),
            "discounts": s(self.discounts),
            "warnings": self.warnings,
            "usage_source": self.usage_source,
            "prepaid": _plain(self.prepaid),
            "progressive": _plain(self.progressive),
        }


def _plain(figures: dict[str, Any] | None) -> dict[str, Any] | None:
    """Figures with amounts as strings (JSON), one level of nesting deep."""
    if figures is None:
        return None
    return {k: _plain(v) if isinstance(v, dict) else str(v) if isinstance(v, Decimal) else v
            for k, v in figures.items()}

