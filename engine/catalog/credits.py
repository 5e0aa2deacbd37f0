"""The catalog's credits: checks the schema cannot make, and the typed model.

A catalog's `credits` section names the wallet's unit, the packs a customer can buy, the
promotional grants rules, coupons and operators hand out, and the automatic top-up; a plan's
`credits`, `progressive_billing` and `budget` say how its usage meets the wallet.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.catalog.model import (
    Budget,
    CreditGrant,
    CreditPack,
    Credits,
    CreditTerms,
    PlanCredits,
    ProgressiveBilling,
    TopUp,
)
from engine.documents import Document, Problem
from engine.money import to_decimal

ZERO = Decimal(0)


def _above_zero(doc: Document, path: list[Any], value: Any) -> list[Problem]:
    if value is not None and to_decimal(value) <= ZERO:
        return [doc.problem(path, f"{value!r} must be above zero")]
    return []


def credits_problems(doc: Document, data: dict[str, Any]) -> list[Problem]:
    """Problems of the catalog's `credits` section (assumes the schema passed)."""
    credits = data.get("credits")
    if credits is None:
        return []
    out: list[Problem] = []
    currency = data["currency"]
    unit = credits.get("unit", currency)
    if unit.isupper():  # a money wallet
        if unit != currency:
            out.append(doc.problem(["credits", "unit"], f"a money wallet is in the catalog's currency {currency}, not {unit}"))
    elif "rate" not in credits:
        out.append(doc.problem(["credits"], f"a custom unit ({unit}) needs a rate: {currency} per {unit}"))
    out.extend(_above_zero(doc, ["credits", "rate"], credits.get("rate")))
    out.extend(_above_zero(doc, ["credits", "low_balance"], credits.get("low_balance")))
    packs = credits.get("packs", {})
    for pid, pack in packs.items():
        base = ["credits", "packs", pid]
        if pack.get("currency", currency) != currency:
            out.append(doc.problem([*base, "currency"], f"{pack['currency']} is not this catalog's currency ({currency})"))
        out.extend(_above_zero(doc, [*base, "price"], pack["price"]))
        out.extend(_above_zero(doc, [*base, "credit"], pack["credit"]))
    for gid, grant in credits.get("grants", {}).items():
        out.extend(_above_zero(doc, ["credits", "grants", gid, "amount"], grant["amount"]))
    out.extend(_top_up_problems(doc, credits.get("top_up"), packs))
    out.extend(_burn_problems(doc, credits.get("burn", {}), unit, data.get("metrics", {})))
    return out


# What a burn adds up event by event: a max, a unique count or a latest value is no running total.
_BURNABLE = ("count", "sum")


def _burn_problems(doc: Document, burn: dict[str, Any], unit: str, metrics: dict[str, Any]) -> list[Problem]:
    if not burn:
        return []
    if unit.isupper():
        return [doc.problem(["credits", "burn"], f"only a custom unit is burned by usage; a {unit} wallet "
                                                 "pays invoices (the plan's prices bill the usage)")]
    return [p for metric_id, rate in burn.items() for p in _burning_metric_problems(doc, metric_id, rate, unit, metrics)]


def _burning_metric_problems(doc: Document, metric_id: str, rate: Any, unit: str,
                             metrics: dict[str, Any]) -> list[Problem]:
    path = ["credits", "burn", metric_id]
    out = _above_zero(doc, path, rate)
    metric = metrics.get(metric_id)
    if metric is None:
        out.insert(0, doc.problem(path, f"unknown metric {metric_id!r}; metrics: {', '.join(sorted(metrics)) or 'none'}"))
    elif metric["aggregation"] not in _BURNABLE:
        out.insert(0, doc.problem(path, f"a {metric['aggregation']} metric cannot burn {unit}: "
                                        f"only {' or '.join(_BURNABLE)} add up event by event"))
    return out


def _top_up_problems(doc: Document, top_up: dict[str, Any] | None, packs: dict[str, Any]) -> list[Problem]:
    if top_up is None:
        return []
    if top_up["pack"] not in packs:
        known = ", ".join(sorted(packs)) or "none"
        return [doc.problem(["credits", "top_up", "pack"], f"unknown pack {top_up['pack']!r}; packs: {known}")]
    credit = to_decimal(packs[top_up["pack"]]["credit"])
    if to_decimal(top_up["threshold"]) >= credit:
        return [doc.problem(["credits", "top_up", "threshold"],
                            f"must be below the top-up's credit ({credit}): one top-up must lift the balance above it")]
    return []


def plan_credit_problems(doc: Document, pid: str, plan: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    progressive = plan.get("progressive_billing")
    if progressive is not None:
        base = ["plans", pid, "progressive_billing"]
        previous = ZERO
        for i, value in enumerate(progressive["thresholds"]):
            amount = to_decimal(value)
            if amount <= previous:
                out.append(doc.problem([*base, "thresholds", i], f"thresholds ascend above zero: {amount} is not above {previous}"))
            previous = max(previous, amount)
        out.extend(_above_zero(doc, [*base, "then_every"], progressive.get("then_every")))
        if plan["interval"] == "once":
            out.append(doc.problem(base, "a one-time plan has no period to bill progressively"))
    return out


def _terms(raw: dict[str, Any]) -> CreditTerms:
    return CreditTerms(priority=int(raw.get("priority", 100)), expires_after=raw.get("expires_after"),
                       rollover=raw.get("rollover", "none"))


def build_credits(data: dict[str, Any]) -> Credits | None:
    raw = data.get("credits")
    if raw is None:
        return None
    top_up = raw.get("top_up")
    return Credits(
        unit=raw.get("unit", data["currency"]),
        rate=to_decimal(raw.get("rate", "1")),
        packs={pid: CreditPack(id=pid, price=to_decimal(p["price"]), credit=to_decimal(p["credit"]),
                               terms=_terms(p), name=p.get("name", pid))
               for pid, p in raw.get("packs", {}).items()},
        grants={gid: CreditGrant(id=gid, amount=to_decimal(g["amount"]), terms=_terms(g), name=g.get("name", gid))
                for gid, g in raw.get("grants", {}).items()},
        top_up=None if top_up is None else TopUp(threshold=to_decimal(top_up["threshold"]), pack=top_up["pack"]),
        burn={metric: to_decimal(rate) for metric, rate in raw.get("burn", {}).items()},
        low_balance=None if raw.get("low_balance") is None else to_decimal(raw["low_balance"]),
    )


def build_plan_credits(p: dict[str, Any]) -> dict[str, Any]:
    """The Plan fields of credits, progressive billing and budget."""
    credits = p.get("credits", {})
    progressive = p.get("progressive_billing")
    budget = p.get("budget", {})
    return {
        "credits": PlanCredits(on_exhausted=credits.get("on_exhausted", "allow"),
                               overdraft=to_decimal(credits.get("overdraft", "0"))),
        "progressive_billing": None if progressive is None else ProgressiveBilling(
            thresholds=tuple(to_decimal(t) for t in progressive["thresholds"]),
            then_every=None if progressive.get("then_every") is None else to_decimal(progressive["then_every"]),
        ),
        "budget": Budget(alerts=tuple(sorted(budget.get("alerts", ()))), hard_stop=bool(budget.get("hard_stop", False))),
    }
