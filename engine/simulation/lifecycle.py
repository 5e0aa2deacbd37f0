"""Lifecycle what-if: the cohort's invoices through collection and dunning, baseline vs draft.

A simplified model, run month by month on the same pricing as `simulate`: each invoice with
something to pay gets a first payment attempt that fails with `failure_rate`; a failed one is
retried `retries` times (each succeeding with `recovery_rate`), with a `payment_failed` notice
per failure; an invoice still unpaid is written off, the account suspended (an
`account_suspended` notice) and, with `suspend_churns`, the customer is gone from the next
month. Every invoice also sends an `invoice` email. Draws are keyed by (customer, month,
attempt), so the baseline and the draft meet the same card declines: only the amounts differ.

It does not drive the real payments, messaging and rules subsystems through the test clock;
it uses the dunning shape of rules/dunning (retry, warn, suspend) as fixed parameters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from engine.catalog.model import Catalog
from engine.simulation.cohort import ONE, ZERO, Cohort, CohortError, usage_at
from engine.simulation.run import Progress, SimulationError, _months_per_period, _plan_pairs, _Side, month_start

_MASK = (1 << 64) - 1


def _uniform(seed: int, i: int, m: int, k: int) -> float:
    """A reproducible uniform draw in [0, 1) for (customer, month, attempt): splitmix64."""
    z = (seed * 0x9E3779B97F4A7C15 + i * 0xBF58476D1CE4E5B9 + m * 0x94D049BB133111EB + k * 0x2545F4914F6CDD1D) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


@dataclass(frozen=True)
class PaymentModel:
    failure_rate: float = 0.05
    recovery_rate: float = 0.5
    retries: int = 3
    suspend_churns: bool = True
    seed: int = 11

    def problems(self) -> list[str]:
        out = []
        for name, v in (("failure_rate", self.failure_rate), ("recovery_rate", self.recovery_rate)):
            if not isinstance(v, int | float) or not 0 <= v <= 1:
                out.append(f"{name}: a share between 0 and 1")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or not 0 <= self.retries <= 10:
            out.append("retries: between 0 and 10")
        return out


@dataclass
class LifecycleResult:
    currency: str
    months: list[str]
    by_month: list[dict[str, Any]]  # one row per month and side
    totals: dict[str, dict[str, Any]]  # side -> figures
    notifications: dict[str, dict[str, int]]  # side -> template -> count
    dunning: dict[str, dict[str, int]]  # side -> final state -> customers

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
        }


def simulate_lifecycle(
    baseline: Catalog,
    draft: Catalog,
    cohort: Cohort,
    *,
    months: int = 12,
    start: date,
    payments: PaymentModel | None = None,
    plan_map: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> LifecycleResult:
    payments = payments or PaymentModel()
    if payments.problems():
        raise SimulationError("; ".join(payments.problems()))
    if not cohort.customers:
        raise CohortError(["the cohort has no customers: nothing to simulate"])
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 120:
        raise SimulationError("months: between 1 and 120")
    start = month_start(start)
    pairs = _plan_pairs(baseline, draft, cohort, plan_map or {})
    growth = ONE + cohort.usage_growth
    rows: list[dict[str, Any]] = []
    totals: dict[str, dict[str, Any]] = {}
    notes: dict[str, dict[str, int]] = {}
    dunning: dict[str, dict[str, int]] = {}
    sides = (("baseline", baseline, False), ("draft", draft, True))
    for step, (label, catalog, is_draft) in enumerate(sides):
        side = _Side(catalog, start)
        integral = side.integral
        gone: dict[int, int] = {}  # customer -> month it was suspended in
        state: dict[int, str] = {}
        sent: dict[str, int] = defaultdict(int)
        tot: dict[str, Any] = {
            "invoices": 0,
            "invoiced": ZERO,
            "collected": ZERO,
            "failed_attempts": 0,
            "recovered": 0,
            "written_off": 0,
            "written_off_amount": ZERO,
            "suspended": 0,
        }
        for m in range(months):
            factor = growth**m
            row: dict[str, Any] = {
                "month": side.month(m).start.isoformat()[:7],
                "side": label,
                "active": 0,
                "invoices": 0,
                "invoiced": ZERO,
                "collected": ZERO,
                "failed_attempts": 0,
                "recovered": 0,
                "written_off": 0,
                "suspended": 0,
            }
            for i, c in enumerate(cohort.customers):
                if not c.active(m) or (i in gone and payments.suspend_churns):
                    continue
                plan = catalog.plans[pairs[c.plan] if is_draft else c.plan]
                u = c.metric_usage() if factor == ONE else usage_at(c, factor, integral)
                row["active"] += 1
                if _months_per_period(plan) == 1:
                    amount: Decimal | None = side.bill(plan, side.month(m))(c.quantity, u).total
                else:
                    amount = side.amount(plan, c, m, u)
                if amount is None:
                    continue
                row["invoices"] += 1
                row["invoiced"] += amount
                sent["invoice"] += 1
                if amount <= ZERO:
                    continue
                if _uniform(payments.seed, i, m, 0) >= payments.failure_rate:
                    row["collected"] += amount
                    continue
                row["failed_attempts"] += 1
                sent["payment_failed"] += 1
                state[i] = "warning"
                paid = False
                for k in range(1, payments.retries + 1):
                    if _uniform(payments.seed, i, m, k) < payments.recovery_rate:
                        paid = True
                        break
                    row["failed_attempts"] += 1
                    sent["payment_failed"] += 1
                if paid:
                    row["recovered"] += 1
                    row["collected"] += amount
                    sent["payment_succeeded"] += 1
                    state[i] = "active"
                else:
                    row["written_off"] += 1
                    tot["written_off_amount"] += amount
                    row["suspended"] += 1
                    sent["account_suspended"] += 1
                    state[i] = "suspended"
                    gone[i] = m
            for key in (
                "invoices",
                "invoiced",
                "collected",
                "failed_attempts",
                "recovered",
                "written_off",
                "suspended",
            ):
                tot[key] += row[key]
            rows.append(row)
            if progress is not None:
                progress((step * months + m + 1) / (2 * months), f"{label}: month {m + 1} of {months}")
        tot["collection_rate"] = (
            (tot["collected"] * 100 / tot["invoiced"]).quantize(Decimal("0.1")) if tot["invoiced"] else None
        )
        totals[label] = tot
        notes[label] = dict(sorted(sent.items()))
        final: dict[str, int] = defaultdict(int)
        for i, c in enumerate(cohort.customers):
            if c.joined < months:
                final[state.get(i, "active")] += 1
        dunning[label] = dict(sorted(final.items()))
    return LifecycleResult(baseline.currency, [r["month"] for r in rows[:months]], rows, totals, notes, dunning)
