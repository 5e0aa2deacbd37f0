"""Plans side by side as a customer would read them: what each costs, what is included, what
each feature gives. Pure: it reads a built catalog and returns rows of text."""

from __future__ import annotations

from decimal import Decimal

from engine.catalog import Catalog, Entitlement, Plan, Price

PER = {"month": "month", "year": "year", "week": "week", "day": "day", "once": "once"}


def number(d: Decimal | int) -> str:
    """1,000,000 and 0.002 alike: thousands separators, no trailing zeros beyond the cents."""
    d = Decimal(d)
    if d == d.to_integral_value():
        return f"{int(d):,}"
    text = f"{d:,.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def money(d: Decimal, currency: str) -> str:
    return f"{d:,.2f} {currency}" if d == d.quantize(Decimal("0.01")) else f"{number(d)} {currency}"


def _unit(price: Price, catalog: Catalog) -> str:
    """'per seat' for the subscription's quantity; 'each' for a metric (the row names it)."""
    return "each" if price.metric else "per seat"


def _tiers(price: Price, catalog: Catalog) -> str:
    cur, unit = catalog.currency, _unit(price, catalog)
    parts, low = [], Decimal(0)
    for t in price.tiers:
        span = f"above {number(low)}" if t.up_to is None else f"up to {number(t.up_to)}"
        if price.model == "graduated_percentage":
            cost = f"{number(t.rate)} %"
        else:
            cost = "free" if t.unit_amount == 0 and t.flat_amount == 0 else f"{money(t.unit_amount, cur)} {unit}"
        if t.flat_amount:
            cost += f" + {money(t.flat_amount, cur)}"
        parts.append(f"{span}: {cost}")
        low = t.up_to or low
    how = "all units at the tier reached" if price.model == "volume" else "each tier its own units"
    return "; ".join(parts) + f" ({how})"


def describe_price(price: Price, catalog: Catalog, interval: str) -> str:
    cur, unit = catalog.currency, _unit(price, catalog)
    if price.model == "flat":
        return f"{money(price.amount, cur)} per {PER.get(interval, interval)}"
    if price.model == "per_unit":
        text = f"{money(price.unit_amount, cur)} {unit}"
    elif price.model == "package":
        free = f", first {number(price.free_units)} free" if price.free_units else ""
        text = f"{money(price.amount, cur)} per {number(price.package_size)}{free}"
    elif price.model == "percentage":
        text = f"{number(price.rate)} % + {money(price.fixed_amount, cur)} per transaction"
    else:
        text = _tiers(price, catalog)
    if price.divide_by:
        text += f" (counted in blocks of {number(price.divide_by)}, rounded {price.round})"
    return text


def describe_entitlement(e: Entitlement | None, catalog: Catalog) -> str:
    if e is None or not e.enabled:
        return "—"
    feature = catalog.features.get(e.feature)
    if feature is None or feature.type == "boolean":
        return "✓"
    if feature.type == "quantity":
        return "unlimited" if e.quantity is None else number(e.quantity)
    limit = "unlimited" if e.limit is None else f"{number(e.limit)} per {e.period.replace('_', ' ')}"
    over = {"block": "then blocked", "allow": "then billed as used", "notify": "then you are told"}[e.overage]
    return limit if e.limit is None else f"{limit}, {over}"


def _plan_rows(plan: Plan, catalog: Catalog) -> dict[str, str]:
    rows = {"Billed": "once" if plan.interval == "once" else f"every {plan.interval}",
            "Free trial": f"{plan.trial_days} days" if plan.trial_days else "—",
            "Minimum per period": money(plan.minimum_amount, catalog.currency) if plan.minimum_amount else "—"}
    for price in plan.prices:
        rows[f"Price: {price.name or price.id}"] = describe_price(price, catalog, plan.interval)
    rows["Upgrades to"] = ", ".join(catalog.plans[p].name for p in plan.upgrade_to if p in catalog.plans) or "—"
    return rows


def compare_plans(catalog: Catalog, plan_ids: list[str]) -> list[dict[str, str]]:
    """One row per line a customer reads (price, trial, each feature), one column per plan."""
    plans = [catalog.plan(p) for p in plan_ids]
    per_plan = [_plan_rows(p, catalog) for p in plans]
    labels = list(dict.fromkeys(label for rows in per_plan for label in rows))
    out = [{"": label, **{p.name: rows.get(label, "—") for p, rows in zip(plans, per_plan, strict=True)}}
           for label in labels]
    for fid, feature in catalog.features.items():
        out.append({"": feature.name or fid,
                    **{p.name: describe_entitlement(p.entitlements.get(fid), catalog) for p in plans}})
    return out
