"""The warning for a change the cohort cannot show: a price the draft changes that no customer
reaches (usage at zero, or below the tier that changed), so the what-if would answer 0.00
for a change that matters. Moved from engine.simulation.run."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal

from engine.catalog.model import Catalog, Plan, Price
from engine.simulation.cohort import ADDITIVE, ONE, ZERO, Cohort, SimCustomer
from engine.simulation.extras import months_per_period


def _change_from(before: Price | None, after: Price | None) -> tuple[Decimal, int | None]:
    """From how much of its metric (or quantity) a price change shows on a bill, and the tier
    (1-based) it starts in: for tiers that differ only from tier k on, usage past tier k-1;
    for anything else, any usage at all."""
    if before is None or after is None or not (before.tiers and after.tiers):
        return ZERO, None
    if replace(before, tiers=()) != replace(after, tiers=()):
        return ZERO, None
    # the first tier that differs (or the first one only one side has)
    k = next((k for k, (x, y) in enumerate(zip(before.tiers, after.tiers, strict=False)) if x != y),
             min(len(before.tiers), len(after.tiers)))
    return (before.tiers[k - 1].up_to or ZERO) if k else ZERO, k + 1


def unexercised(baseline: Catalog, draft: Catalog, cohort: Cohort, pairs: Mapping[str, str], months: int) -> list[str]:
    """A warning for every price the draft changes that no customer of the cohort can show
    the effect of (e.g. a tier price with every customer's usage at zero or below the
    tier): such a what-if would answer 0.00 for a change that matters."""
    out = []
    growth = max(ONE, (ONE + cohort.usage_growth) ** (months - 1))
    by_plan: dict[str, list[SimCustomer]] = defaultdict(list)
    for c in cohort.customers:
        if c.joined < months:
            by_plan[c.plan].append(c)
    for plan_id, target in sorted(pairs.items()):
        out += _plan_unexercised(baseline, draft, plan_id, target, by_plan[plan_id], growth)
    return out


def _plan_unexercised(baseline: Catalog, draft: Catalog, plan_id: str, target: str,
                      customers: list[SimCustomer], growth: Decimal) -> list[str]:
    bplan, dplan = baseline.plans[plan_id], draft.plans[target]
    span = Decimal(max(months_per_period(bplan) or 1, months_per_period(dplan) or 1))
    additive = {m for m, x in baseline.metrics.items() if x.aggregation in ADDITIVE}
    out = []
    for pid, b, d, price in _changed_prices(bplan, dplan):
        threshold, tier = _change_from(b, d)
        reach, what, hint = _reach(price.metric, customers, growth, span if price.metric in additive else ONE)
        if reach <= threshold:
            out.append(_cannot_exercise(plan_id, pid, tier, threshold, reach, what, hint))
    return out


def _changed_prices(bplan: Plan, dplan: Plan) -> list[tuple[str, Price | None, Price | None, Price]]:
    """(id, before, after, the price as it is now) of each price the draft changes, leaving
    out those charged whatever the inputs (a flat price on no metric)."""
    before = {p.id: p for p in bplan.prices}
    after = {p.id: p for p in dplan.prices}
    out = []
    for pid in sorted(set(before) | set(after)):
        b, d = before.get(pid), after.get(pid)
        price = d or b
        assert price is not None
        if b != d and not (price.model == "flat" and price.metric is None):
            out.append((pid, b, d, price))
    return out


def _reach(metric: str | None, customers: list[SimCustomer], growth: Decimal,
           scale: Decimal) -> tuple[Decimal, str, str]:
    """The most any customer has of what a price reads (scaled by usage growth and the billing
    period for a metric), what that is, and where a cohort gives it."""
    if metric is None:
        return max((c.quantity for c in customers), default=ZERO), "seats (quantity)", "quantity column"
    reach = max((c.usage.get(metric, ZERO) for c in customers), default=ZERO) * growth * scale
    return reach, metric, f"billing simulate --usage {metric}=..., or the console's usage inputs"


def _cannot_exercise(plan_id: str, pid: str, tier: int | None, threshold: Decimal, reach: Decimal,
                     what: str, hint: str) -> str:
    change = f"tier {tier} of price {pid!r}" if tier else f"price {pid!r}"
    if threshold > 0:
        seen = f"no customer on {plan_id} uses more than {_fmt(reach)} {what}, and the change starts above {_fmt(threshold)}"
    else:
        seen = f"no customer on {plan_id} has any {what}"
    return (
        f"cannot exercise: the draft changes {change} of plan {plan_id!r} ({what}), but {seen}: "
        f"this what-if cannot show what the change does. Give the cohort {what} ({hint})."
    )


def _fmt(x: Decimal) -> str:
    return f"{x.normalize():f}" if x == x.to_integral_value() else str(x)

