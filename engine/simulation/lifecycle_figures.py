"""A lifecycle what-if's figures, counted as the engine's records are read back: one side's
months (`Tally`), its totals, rounding, and the two sides joined into a `LifecycleResult`
with how they were obtained (every customer, or a sample and its 95 % margins). Pure: what
the engine did is read in engine/system/lifecycle.py and handed here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from dateutil.relativedelta import relativedelta

from engine.simulation.lifecycle import LifecycleResult
from engine.simulation.sampling import Sample, margin95, margin95_delta

ZERO = Decimal(0)
ONE = Decimal(1)
MONEY = ("invoiced", "collected", "outstanding", "written_off")
COUNTS = ("invoices", "payments", "failed_payments", "warned", "suspended", "cancelled", "notifications")
STATE_COLUMNS = {"warning": "warned", "suspended": "suspended", "cancelled": "cancelled"}
PAYMENT_COLUMNS = {"payment.failed": "failed_payments", "payment.succeeded": "payments"}
UNPAID_COLUMNS = {"finalized": "outstanding", "uncollectible": "written_off"}  # what is left unpaid
# One side's figures: "rows" (a dict a month), "totals", "notifications", "dunning", "collected".
Figures = dict[str, Any]


def _month(when: datetime, begin: datetime) -> int:
    return (when.year - begin.year) * 12 + when.month - begin.month


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def event_column(event_type: str, properties: Mapping[str, Any] | None) -> str | None:
    """The column a payment or dunning event counts in (None: a transition not counted)."""
    return PAYMENT_COLUMNS.get(event_type) or STATE_COLUMNS.get(str((properties or {}).get("to")))


class Tally:
    """One side's figures month by month (by when things happened), each customer's share
    weighted by how many cohort customers it stands for (1 unless sampled)."""

    def __init__(self, begin: datetime, months: int, label: str, weights: Mapping[str, Decimal]) -> None:
        self.begin = begin
        self.weights = weights
        self.rows: list[dict[str, Any]] = [
            {
                "month": (begin + relativedelta(months=m)).date().isoformat()[:7],
                "side": label,
                **dict.fromkeys(COUNTS, ZERO),
                **dict.fromkeys(MONEY, ZERO),
            }
            for m in range(months)
        ]
        self.collected: dict[str, Decimal] = defaultdict(lambda: ZERO)

    def weight(self, customer_id: object) -> Decimal:
        return self.weights.get(str(customer_id), ONE)

    def row(self, when: datetime) -> dict[str, Any] | None:
        m = _month(_aware(when), self.begin)
        return self.rows[m] if 0 <= m < len(self.rows) else None

    def invoice(self, customer_id: str, inv: Mapping[str, Any]) -> None:
        """An invoice issued within the run (a void one counts for nothing)."""
        r = self.row(datetime.fromisoformat(inv["issued_at"])) if inv["issued_at"] else None
        if r is None or inv["status"] == "void":
            return
        w = self.weight(customer_id)
        paid = Decimal(inv["amount_paid"])
        self.collected[customer_id] += paid
        r["invoices"] += w
        r["invoiced"] += Decimal(inv["total"]) * w
        r["collected"] += paid * w
        if (column := UNPAID_COLUMNS.get(inv["status"])) is not None:
            r[column] += (Decimal(inv["amount_due"]) - paid) * w

    def count(self, when: datetime, column: str | None, customer_id: object) -> None:
        """One more of `column` (None: nothing to count) in the month of `when`."""
        r = self.row(when)
        if r is not None and column is not None:
            r[column] += self.weight(customer_id)

    def figures(self, states: Mapping[str, int], notes: Mapping[str, int]) -> Figures:
        """The side's figures: its months rounded, their totals, and the notification
        templates and final dunning states of the customers run, scaled by the mean weight."""
        for r in self.rows:
            _round(r)
        weights = self.weights
        scale = sum(weights.values(), ZERO) / len(weights) if weights else ONE
        return {
            "rows": self.rows,
            "totals": _totals(self.rows),
            "notifications": {k: _whole(v * scale) for k, v in sorted(notes.items())},
            "dunning": {k: _whole(v * scale) for k, v in sorted(states.items())},
            "collected": dict(self.collected),
        }


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The side's months added up, with the share of what was invoiced that was collected."""
    totals: dict[str, Any] = {k: sum((r[k] for r in rows), 0) for k in COUNTS}
    totals |= {k: sum((r[k] for r in rows), ZERO) for k in MONEY}
    totals["collection_rate"] = (
        (totals["collected"] * 100 / totals["invoiced"]).quantize(Decimal("0.1")) if totals["invoiced"] else None
    )
    return totals


def _whole(x: Decimal) -> int:
    return int(x.quantize(Decimal(1), ROUND_HALF_UP))


def _round(r: dict[str, Any]) -> None:
    """A scaled-up month: money to the cent, counts to whole numbers (half up, once, at the end)."""
    for k in MONEY:
        r[k] = r[k].quantize(Decimal("0.01"), ROUND_HALF_UP)
    for k in COUNTS:
        r[k] = _whole(r[k])


def lifecycle_result(currency: str, sample: Sample, baseline: Figures, draft: Figures) -> LifecycleResult:
    sides = {"baseline": baseline, "draft": draft}
    return LifecycleResult(
        currency,
        [r["month"] for r in baseline["rows"]],
        [*baseline["rows"], *draft["rows"]],
        {label: side["totals"] for label, side in sides.items()},
        {label: side["notifications"] for label, side in sides.items()},
        {label: side["dunning"] for label, side in sides.items()},
        _sampling(sample, baseline["collected"], draft["collected"]),
    )


def _sampling(sample: Sample, baseline: Mapping[str, Decimal], draft: Mapping[str, Decimal]) -> dict[str, Any]:
    """How the figures were obtained, with the 95 % margins of cash collected (each side's ratio
    estimate, and the paired difference: the same customers ran on both sides)."""
    return {
        "sentence": sample.sentence(),
        "customers_run": len(sample.cohort.customers),
        "customers": sample.population,
        "scaled": sample.scaled,
        "collected_margin_95": {
            "baseline": margin95(sample, baseline, side="baseline"),
            "draft": margin95(sample, draft, side="draft"),
            "delta": margin95_delta(sample, baseline, draft),
        },
    }
