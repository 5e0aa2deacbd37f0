"""What a move to the draft plan does to a customer's features (lost, reduced) and the quota
checks a run counts over-limit and blocked customers with. Moved from engine.simulation.run."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from engine.catalog.model import Catalog, Feature, Plan
from engine.pricing import MetricUsage


def _entitlement_level(plan: Plan, feature: str) -> tuple[bool, int | None]:
    """(has it, how much: None = unlimited)."""
    e = plan.entitlements.get(feature)
    if e is None or not e.enabled:
        return False, 0
    return True, e.quantity if e.quantity is not None else e.limit


def feature_changes(catalog_b: Catalog, plan_b: Plan, catalog_d: Catalog, plan_d: Plan) -> list[tuple[str, str]]:
    """Features a customer moving from plan_b to plan_d would lose ("lost") or get less of ("reduced")."""
    out = []
    for fid in sorted(plan_b.entitlements):
        had, amount_b = _entitlement_level(plan_b, fid)
        if not had:
            continue
        has, amount_d = _entitlement_level(plan_d, fid)
        change = _level_change(catalog_b.features.get(fid), has, amount_b, amount_d)
        if change is not None:
            out.append((fid, change))
    return out


def _level_change(feature: Feature | None, has: bool, amount_b: int | None,
                  amount_d: int | None) -> str | None:
    """"lost" when the draft plan lacks the feature, "reduced" when it gives less of a
    counted one (a limit where there was none, or a lower one)."""
    if not has:
        return "lost"
    if feature is None or feature.type not in ("quantity", "metered"):
        return None
    if amount_d is not None and (amount_b is None or amount_d < amount_b):
        return "reduced"
    return None


def quota_checks(catalog: Catalog, plan: Plan) -> list[tuple[str, str, Decimal, str]]:
    """(feature, metric, monthly limit, overage) for the plan's metered features that have a limit."""
    out = []
    for fid, e in plan.entitlements.items():
        f = catalog.features.get(fid)
        if f is None or f.type != "metered" or f.metric is None or not e.enabled or e.limit is None:
            continue
        out.append((fid, f.metric, Decimal(e.limit), e.overage))
    return out



def check_quotas(
    i: int,
    usage: Mapping[str, MetricUsage],
    checks: list[tuple[str, str, Decimal, str]],
    over: dict[str, set[int]],
    blocked: dict[str, set[int]],
) -> None:
    for fid, metric, limit, overage in checks:
        u = usage.get(metric)
        if u is not None and u.quantity > limit:
            over[fid].add(i)
            if overage == "block":
                blocked[fid].add(i)

