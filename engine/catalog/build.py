"""Turn a validated catalog document into the typed model, and check what the schema cannot:
references between parts, tier order, duplicate ids."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from engine.catalog.credits import build_credits, build_plan_credits, credits_problems, plan_credit_problems
from engine.catalog.model import Catalog, Coupon, Entitlement, Feature, Metric, Plan, Price, Tier
from engine.documents import Document, Problem
from engine.money import KNOWN_CURRENCIES, number_to_decimal, to_decimal


def _dec(value: Any) -> Decimal:
    return number_to_decimal(value)


def _opt_dec(value: Any) -> Decimal | None:
    return None if value is None else _dec(value)


def _opt_money(value: Any) -> Decimal | None:
    return None if value is None else to_decimal(value)


def cross_reference_problems(doc: Document) -> list[Problem]:
    """Problems the schema cannot see. Assumes the document passed the schema."""
    data = doc.data
    out: list[Problem] = []
    if data["currency"] not in KNOWN_CURRENCIES:
        out.append(doc.problem(["currency"], f"{data['currency']!r} is not an ISO 4217 currency we know"))
    # The schema holds these to objects (plans required), never null.
    metrics = data.get("metrics", {})
    features = data.get("features", {})
    plans = data["plans"]
    out.extend(_feature_problems(doc, features, metrics))
    grants = (data.get("credits") or {}).get("grants") or {}
    for code, coupon in data.get("coupons", {}).items():
        out.extend(_coupon_problems(doc, code, coupon, plans))
        out.extend(_coupon_grant_problems(doc, code, coupon, grants))
    for pid, plan in plans.items():
        out.extend(_plan_problems(doc, pid, plan, plans, metrics, features))
        out.extend(plan_credit_problems(doc, pid, plan))
    out.extend(credits_problems(doc, data))
    return out


def _feature_problems(doc: Document, features: dict[str, Any], metrics: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    for fid, feat in features.items():
        if feat.get("metric") and feat["metric"] not in metrics:
            out.append(doc.problem(["features", fid, "metric"], f"unknown metric {feat['metric']!r}"))
        if feat["type"] != "metered" and "metric" in feat:
            out.append(doc.problem(["features", fid, "metric"], "only a metered feature has a metric"))
    return out


def _coupon_grant_problems(doc: Document, code: str, coupon: dict[str, Any], grants: dict[str, Any]) -> list[Problem]:
    """A coupon's credit grant must be one the catalog's `credits.grants` declares: the
    coupon hands out its amount and terms, nothing of its own."""
    if "grant_credit" not in coupon:
        return []
    out: list[Problem] = []
    if "percent_off" in coupon and "amount_off" in coupon:  # the schema's "exactly one" holds without a grant
        out.append(doc.problem(["coupons", code], "give at most one of amount_off, percent_off"))
    wanted = coupon["grant_credit"]["grant"]
    if wanted not in grants:
        known = ", ".join(sorted(grants)) or "none"
        out.append(doc.problem(["coupons", code, "grant_credit", "grant"],
                               f"unknown credit grant {wanted!r}; credits.grants has {known}"))
    return out


def _coupon_problems(doc: Document, code: str, coupon: dict[str, Any], plans: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    for i, pid in enumerate(coupon.get("applies_to", [])):
        if pid not in plans:
            out.append(doc.problem(["coupons", code, "applies_to", i], f"unknown plan {pid!r}"))
    if coupon["duration"] != "repeating" and "periods" in coupon:
        out.append(doc.problem(["coupons", code, "periods"], "periods is only for duration: repeating"))
    if "percent_off" in coupon and _dec(coupon["percent_off"]) > 100:
        out.append(doc.problem(["coupons", code, "percent_off"], "cannot be more than 100"))
    if "expires" in coupon:
        try:
            date.fromisoformat(str(coupon["expires"]))
        except ValueError:
            out.append(doc.problem(["coupons", code, "expires"], "not an ISO date (YYYY-MM-DD)"))
    return out


def _plan_problems(
    doc: Document,
    pid: str,
    plan: dict[str, Any],
    plans: dict[str, Any],
    metrics: dict[str, Any],
    features: dict[str, Any],
) -> list[Problem]:
    out: list[Problem] = []
    base: list[Any] = ["plans", pid]
    for i, target in enumerate(plan.get("upgrade_to", [])):
        if target not in plans:
            out.append(doc.problem([*base, "upgrade_to", i], f"unknown plan {target!r}"))
        elif target == pid:
            out.append(doc.problem([*base, "upgrade_to", i], "a plan cannot upgrade to itself"))
    seen: dict[str, int] = {}
    for i, price in enumerate(plan.get("prices", [])):
        pbase = [*base, "prices", i]
        if price["id"] in seen:
            out.append(
                doc.problem([*pbase, "id"], f"duplicate price id {price['id']!r} (also prices[{seen[price['id']]}])")
            )
        else:
            seen[price["id"]] = i
        out.extend(_price_problems(doc, pbase, price, plan, metrics))
    for fid in plan.get("entitlements", {}):
        problem = _entitlement_problem(doc, [*base, "entitlements", fid], fid, plan["entitlements"][fid], features)
        if problem is not None:
            out.append(problem)
    return out


def _price_problems(
    doc: Document, pbase: list[Any], price: dict[str, Any], plan: dict[str, Any], metrics: dict[str, Any]
) -> list[Problem]:
    out: list[Problem] = []
    metric = price.get("metric")
    if metric is not None and metric not in metrics:
        out.append(doc.problem([*pbase, "metric"], f"unknown metric {metric!r}"))
    model = price["model"]
    if model in ("percentage", "graduated_percentage") and metric in metrics:
        if metrics[metric]["aggregation"] not in ("sum",):
            out.append(
                doc.problem(
                    [*pbase, "metric"],
                    f"a {model} price needs a sum metric (volume); {metric!r} is {metrics[metric]['aggregation']}",
                )
            )
    if price.get("timing") == "in_advance" and metric is not None:
        out.append(
            doc.problem([*pbase, "timing"], "usage is only known at the end of a period: a metered price is in_arrears")
        )
    if plan["interval"] == "once" and price.get("timing") == "in_arrears":
        out.append(doc.problem([*pbase, "timing"], "a one-time plan has no period to bill in arrears"))
    out.extend(_tier_problems(doc, pbase, price))
    out.extend(_field_fit_problems(doc, pbase, price))
    return out


def _entitlement_problem(
    doc: Document, ebase: list[Any], fid: str, value: Any, features: dict[str, Any]
) -> Problem | None:
    if fid not in features:
        return doc.problem(ebase, f"unknown feature {fid!r}")
    ftype = features[fid]["type"]
    if ftype == "boolean" and not isinstance(value, bool):
        return doc.problem(ebase, f"{fid!r} is a boolean feature: write true or false")
    if ftype == "quantity" and isinstance(value, dict):
        return doc.problem(ebase, f"{fid!r} is a quantity feature: write a number (or true for unlimited)")
    if ftype == "metered" and not isinstance(value, dict | bool):
        return doc.problem(ebase, f"{fid!r} is metered: write {{limit: N, period: month, overage: block}}")
    return None


def _tier_problems(doc: Document, pbase: list[Any], price: dict[str, Any]) -> list[Problem]:
    tiers = price.get("tiers")
    out: list[Problem] = []
    if tiers is None:
        return out
    if price["model"] not in ("graduated", "volume", "graduated_percentage"):
        out.append(doc.problem([*pbase, "tiers"], f"a {price['model']} price has no tiers"))
        return out
    out.extend(_open_tier_problems(doc, pbase, tiers))
    previous: Decimal | None = None
    for i, tier in enumerate(tiers):
        tbase = [*pbase, "tiers", i]
        if tier.get("up_to") is not None:
            bound = _dec(tier["up_to"])
            out.extend(_bound_problems(doc, tbase, bound, previous))
            previous = bound
        out.extend(_tier_field_problems(doc, tbase, price["model"], tier))
    return out


def _open_tier_problems(doc: Document, pbase: list[Any], tiers: list[dict[str, Any]]) -> list[Problem]:
    open_tiers = [i for i, t in enumerate(tiers) if t.get("up_to") is None]
    if len(open_tiers) != 1:
        where = [*pbase, "tiers"] if not open_tiers else [*pbase, "tiers", open_tiers[1], "up_to"]
        found = f"; found {len(open_tiers)}" if open_tiers else "; found none"
        return [doc.problem(where, "exactly one tier must be open (up_to: null), the last one" + found)]
    if open_tiers[0] != len(tiers) - 1:
        return [doc.problem([*pbase, "tiers", open_tiers[0], "up_to"], "only the last tier can be open (up_to: null)")]
    return []


def _bound_problems(doc: Document, tbase: list[Any], bound: Decimal, previous: Decimal | None) -> list[Problem]:
    out: list[Problem] = []
    if previous is not None and bound <= previous:
        out.append(
            doc.problem([*tbase, "up_to"], f"tiers must ascend: {bound} is not above the previous bound {previous}")
        )
    if bound <= 0:
        out.append(doc.problem([*tbase, "up_to"], "a tier bound must be above zero"))
    return out


def _tier_field_problems(doc: Document, tbase: list[Any], model: str, tier: dict[str, Any]) -> list[Problem]:
    """A graduated_percentage tier has a rate; the other tiers unit_amount and/or flat_amount."""
    needed: tuple[str, ...]
    if model == "graduated_percentage":
        wrong, why = "unit_amount", "a graduated_percentage tier has a rate, not a unit_amount"
        needed, missing = ("rate",), "'rate' is required in a graduated_percentage tier"
    else:
        wrong, why = "rate", f"a {model} tier has unit_amount/flat_amount, not a rate"
        needed, missing = ("unit_amount", "flat_amount"), "a tier needs unit_amount or flat_amount"
    out: list[Problem] = []
    if wrong in tier:
        out.append(doc.problem([*tbase, wrong], why))
    if not any(key in tier for key in needed):
        out.append(doc.problem(tbase, missing))
    return out


_MODEL_FIELDS = {
    "flat": {"amount"},
    "per_unit": {"unit_amount"},
    "graduated": {"tiers"},
    "volume": {"tiers"},
    "package": {"package_size", "amount", "free_units"},
    "graduated_percentage": {"tiers"},
    "percentage": {"rate", "fixed_amount", "free_units", "free_amount", "min_per_transaction", "max_per_transaction"},
}
_PRICING_FIELDS = set().union(*_MODEL_FIELDS.values())


def _field_fit_problems(doc: Document, pbase: list[Any], price: dict[str, Any]) -> list[Problem]:
    """A field that the model ignores is almost always a mistake (e.g. `amount` on per_unit)."""
    model = price["model"]
    out = [
        doc.problem([*pbase, key], f"{key!r} has no meaning for a {model} price")
        for key in price
        if key in _PRICING_FIELDS and key not in _MODEL_FIELDS[model]
    ]
    if model == "percentage":
        out.extend(_percentage_problems(doc, pbase, price))
    if model == "flat" and price.get("metric"):
        out.append(doc.problem([*pbase, "metric"], "a flat price is charged once per period; it has no metric"))
    if "transform" in price and model in ("flat", "percentage", "graduated_percentage"):
        out.append(doc.problem([*pbase, "transform"], f"a {model} price does not take a transform"))
    return out


def _percentage_problems(doc: Document, pbase: list[Any], price: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    lo, hi = price.get("min_per_transaction"), price.get("max_per_transaction")
    if lo is not None and hi is not None and to_decimal(lo) > to_decimal(hi):
        out.append(doc.problem([*pbase, "max_per_transaction"], "must not be below min_per_transaction"))
    if _dec(price["rate"]) > 100:
        out.append(doc.problem([*pbase, "rate"], "a rate is a percentage: at most 100"))
    return out


def build_catalog(doc: Document) -> Catalog:
    """Build the typed catalog. Assumes the schema and cross-reference checks passed."""
    data = doc.data
    metrics = {
        mid: Metric(
            id=mid,
            event=m["event"],
            aggregation=m["aggregation"],
            field=m.get("field"),
            filters={k: tuple(v) for k, v in m.get("filters", {}).items()},
            recurring=bool(m.get("recurring", False)),
            name=m.get("name", mid),
        )
        for mid, m in data.get("metrics", {}).items()
    }
    features = {
        fid: Feature(id=fid, type=f["type"], name=f.get("name", fid), metric=f.get("metric"))
        for fid, f in data.get("features", {}).items()
    }
    coupons = {
        code: Coupon(
            code=code,
            duration=c["duration"],
            percent_off=_opt_dec(c.get("percent_off")),
            amount_off=_opt_money(c.get("amount_off")),
            periods=c.get("periods"),
            applies_to=tuple(c.get("applies_to", ())),
            max_redemptions=c.get("max_redemptions"),
            expires=date.fromisoformat(str(c["expires"])) if c.get("expires") else None,
            name=c.get("name", code),
            grant_credit=(c.get("grant_credit") or {}).get("grant"),
            grant_reason=str((c.get("grant_credit") or {}).get("reason") or ""),
        )
        for code, c in data.get("coupons", {}).items()
    }
    plans = {pid: _build_plan(pid, p, features) for pid, p in data["plans"].items()}
    return Catalog(
        name=data["catalog"],
        currency=data["currency"],
        rounding=data.get("rounding", "half_up"),
        metrics=metrics,
        features=features,
        coupons=coupons,
        plans=plans,
        taxes={k: _dec(v) for k, v in data.get("taxes", {}).items()},
        description=data.get("description", ""),
        credits=build_credits(data),
        source=doc.file,
        raw=data,
    )


def _build_price(p: dict[str, Any]) -> Price:
    metric = p.get("metric")
    transform = p.get("transform", {})
    money = {k: to_decimal(p[k]) for k in ("amount", "unit_amount", "fixed_amount") if k in p}
    return Price(
        id=p["id"],
        name=p.get("name", p["id"]),
        model=p["model"],
        metric=metric,
        # Usage is known only when the period closes; fixed fees are billed up front.
        timing=p.get("timing", "in_arrears" if metric else "in_advance"),
        prorate=bool(p.get("prorate", True)),
        tiers=tuple(
            Tier(
                up_to=_opt_dec(t.get("up_to")),
                unit_amount=to_decimal(t.get("unit_amount", "0")),
                flat_amount=to_decimal(t.get("flat_amount", "0")),
                rate=_dec(t.get("rate", 0)),
            )
            for t in p.get("tiers", ())
        ),
        package_size=int(p.get("package_size", 1)),
        free_units=int(p.get("free_units", 0)),
        free_units_given="free_units" in p,
        rate=_dec(p.get("rate", 0)),
        free_amount=_opt_money(p.get("free_amount")),
        min_per_transaction=_opt_money(p.get("min_per_transaction")),
        max_per_transaction=_opt_money(p.get("max_per_transaction")),
        divide_by=transform.get("divide_by"),
        round=transform.get("round", "up"),
        **money,
    )


def _build_entitlement(fid: str, value: Any, feature: Feature) -> Entitlement:
    if isinstance(value, bool):
        return Entitlement(feature=fid, enabled=value)
    if isinstance(value, int):
        if feature.type == "metered":
            return Entitlement(feature=fid, limit=value)
        return Entitlement(feature=fid, enabled=value > 0, quantity=value)
    return Entitlement(
        feature=fid,
        enabled=value.get("limit", 1) != 0,
        limit=value.get("limit"),
        period=value.get("period", "month"),
        overage=value.get("overage", "block"),
    )


def _build_plan(pid: str, p: dict[str, Any], features: dict[str, Feature]) -> Plan:
    return Plan(
        id=pid,
        name=p["name"],
        description=p.get("description", ""),
        interval=p["interval"],
        interval_count=int(p.get("interval_count", 1)),
        trial_days=int(p.get("trial_days", 0)),
        minimum_amount=to_decimal(p.get("minimum_amount", "0")),
        upgrade_to=tuple(p.get("upgrade_to", ())),
        prices=tuple(_build_price(x) for x in p.get("prices", ())),
        entitlements={
            fid: _build_entitlement(fid, v, features[fid]) for fid, v in p.get("entitlements", {}).items()
        },
        **build_plan_credits(p),
    )
