"""What a lifecycle what-if reports, baseline vs draft: invoices, cash collected, payment
attempts, dunning outcomes and notifications, month by month.

The run itself is engine.system.lifecycle_on_engine: the cohort goes through the engine's
own billing, payments, rules, automation, scheduler and messaging on a test clock, so these
figures come from the same code as live billing (this package may not import those
subsystems; it only holds the shape of the result).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class LifecycleResult:
    currency: str
    months: list[str]
    by_month: list[dict[str, Any]]  # one row per month and side
    totals: dict[str, dict[str, Any]]  # side -> figures
    notifications: dict[str, dict[str, int]]  # side -> template -> count
    dunning: dict[str, dict[str, int]]  # side -> final state -> customers
    # How the figures were obtained: every customer, or a stratified sample scaled back up
    # (engine.simulation.sampling), with the 95 % margins of cash collected.
    sampling: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def s(v: Any) -> Any:
            return str(v) if isinstance(v, Decimal) else v

        return {
            "currency": self.currency,
            "months": self.months,
            "by_month": [{k: s(v) for k, v in r.items()} for r in self.by_month],
            "totals": {side: {k: s(v) for k, v in t.items()} for side, t in self.totals.items()},
            "notifications": self.notifications,
            "dunning": self.dunning,
            "sampling": {k: (s(v) if not isinstance(v, dict) else {a: s(b) for a, b in v.items()})
                         for k, v in self.sampling.items()},
        }

    def months_csv(self) -> str:
        """One row per month and side, every figure (a download on the console page)."""
        if not self.by_month:
            return ""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(self.by_month[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.by_month)
        return out.getvalue()
