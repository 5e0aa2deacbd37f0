"""The plan builder's model: a plan as a form holds it, checked field by field, written into
the catalog YAML of a draft (comments elsewhere kept). The YAML stays the source of truth;
`plan_spec` reads a plan back from it for editing.

    spec = PlanSpec(id="team", name="Team", prices=[PriceSpec(id="seats", model="per_unit",
                    unit_amount="8.00", included="3")])
    text = write_plan(text, spec)          # FormInvalid (every field's problem) or the new YAML
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from engine.console import yaml_edit as ye
from engine.console.fields import FieldProblem, FormInvalid, amount, blank, money_text, percent, whole

MODELS = ("flat", "per_unit", "graduated", "volume", "package", "graduated_percentage", "percentage")
TIERED = ("graduated", "volume", "graduated_percentage")
PERCENTAGES = ("percentage", "graduated_percentage")
INTERVALS = ("month", "year", "week", "day", "once")
PERIODS = ("month", "day", "week", "year", "billing_period")
OVERAGES = ("block", "allow", "notify")
FEATURE_TYPES = ("boolean", "quantity", "metered")
# The plan's keys the form holds (FORMATS §1); write_plan leaves any other key as it is.
FORM_KEYS = ("name", "description", "interval", "trial_days", "minimum_amount", "upgrade_to", "prices", "entitlements")


@dataclass
class TierSpec:
    up_to: str = ""  # empty: the open last tier
    unit_amount: str = ""
    flat_amount: str = ""
    rate: str = ""


@dataclass
class PriceSpec:
    id: str
    model: str
    name: str = ""
    metric: str = ""  # empty: the subscription's quantity (seats)
    timing: str = ""  # empty: the default (in_advance without a metric, in_arrears with one)
    amount: str = ""
    unit_amount: str = ""
    included: str = ""  # per_unit only: units included free (written as a graduated price)
    tiers: list[TierSpec] = field(default_factory=list)
    package_size: str = ""
    free_units: str = ""
    rate: str = ""
    fixed_amount: str = ""
    free_amount: str = ""
    min_per_transaction: str = ""
    max_per_transaction: str = ""
    divide_by: str = ""
    round: str = "up"
    prorate: str = ""  # empty: the default (an in-advance price prorates); "true" | "false"
    description: str = ""  # no input yet: kept from the YAML when a plan is loaded and written


@dataclass
class EntitlementSpec:
    feature: str
    value: str = "true"  # boolean: true/false; quantity: a number (empty: unlimited)
    limit: str = ""  # metered: empty is unlimited
    period: str = "month"
    overage: str = "block"


@dataclass
class PlanSpec:
    id: str
    name: str
    interval: str = "month"
    description: str = ""
    trial_days: str = ""
    minimum_amount: str = ""
    upgrade_to: list[str] = field(default_factory=list)
    prices: list[PriceSpec] = field(default_factory=list)
    entitlements: list[EntitlementSpec] = field(default_factory=list)


@dataclass(frozen=True)
class CatalogContext:
    """What a plan may refer to in its catalog."""

    currency: str = "USD"
    plans: frozenset[str] = frozenset()
    metrics: dict[str, str] = field(default_factory=dict)  # id -> aggregation
    features: dict[str, str] = field(default_factory=dict)  # id -> type

    @classmethod
    def of(cls, data: Any) -> CatalogContext:
        data = data if isinstance(data, dict) else {}

        def section(name: str, key: str) -> dict[str, str]:
            items = data.get(name) or {}
            return {str(k): str((v or {}).get(key, "")) for k, v in items.items()} if isinstance(items, dict) else {}

        return cls(
            currency=str(data.get("currency") or "USD"),
            plans=frozenset(str(p) for p in data.get("plans") or {}),
            metrics=section("metrics", "aggregation"),
            features=section("features", "type"),
        )


# Checking -------------------------------------------------------------------------------------


def tier_problems(tiers: list[TierSpec], model: str, currency: str, where: str = "tiers") -> list[FieldProblem]:
    """Tiers as the table holds them: bounds ascending whole numbers, only the last open, each
    tier priced; every problem names its row (counted from 1) and column."""
    out: list[FieldProblem] = []
    if not tiers:
        return [FieldProblem(where, "give at least one tier (the last with an empty up_to)")]
    previous: int | None = None
    for n, tier in enumerate(tiers, 1):
        row = f"{where}[{n}]"
        last = n == len(tiers)
        if blank(tier.up_to):
            if not last:
                out.append(
                    FieldProblem(f"{row}.up_to", "only the last tier is open (empty up_to); give this one a bound")
                )
        else:
            bound = whole(tier.up_to, f"{row}.up_to", out, minimum=1)
            if bound is not None and previous is not None and bound <= previous:
                out.append(
                    FieldProblem(f"{row}.up_to", f"tiers must go up: {bound} is not above the tier before ({previous})")
                )
            if bound is not None:
                previous = bound
            if last:
                out.append(FieldProblem(f"{row}.up_to", "the last tier is open: leave up_to empty"))
        out.extend(_tier_price_problems(tier, model, currency, row))
    return out


def _tier_price_problems(tier: TierSpec, model: str, currency: str, row: str) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    if model == "graduated_percentage":
        if blank(tier.rate):
            out.append(FieldProblem(f"{row}.rate", "a percentage tier needs a rate"))
        else:
            percent(tier.rate, f"{row}.rate", out)
    elif blank(tier.unit_amount) and blank(tier.flat_amount):
        out.append(FieldProblem(f"{row}.unit_amount", "give a unit amount or a flat amount"))
    elif not blank(tier.unit_amount):
        amount(tier.unit_amount, f"{row}.unit_amount", out, currency=currency, unit=True)
    if not blank(tier.flat_amount):
        amount(tier.flat_amount, f"{row}.flat_amount", out, currency=currency)
    return out


def _metric_problems(p: PriceSpec, ctx: CatalogContext, where: str) -> list[FieldProblem]:
    """A price with a metric: the metric is the catalog's, and the price takes usage."""
    out: list[FieldProblem] = []
    if p.metric not in ctx.metrics:
        known = ", ".join(sorted(ctx.metrics)) or "none: add one to the catalog's metrics"
        out.append(FieldProblem(f"{where}.metric", f"there is no metric {p.metric!r}; the catalog has {known}"))
    if p.model == "flat":
        out.append(FieldProblem(f"{where}.metric", "a flat fee is charged once per period; it has no metric"))
    if p.timing == "in_advance":
        out.append(FieldProblem(f"{where}.timing", "usage is only known when the period ends: bill it in arrears"))
    return out


def price_problems(p: PriceSpec, ctx: CatalogContext, where: str) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    if p.model not in MODELS:
        return [FieldProblem(f"{where}.model", f"{p.model!r} is not a price model; one of {', '.join(MODELS)}")]
    if blank(p.metric):
        if p.model in PERCENTAGES:
            out.append(FieldProblem(f"{where}.metric", f"a {p.model} price takes a share of a volume: pick a metric"))
    else:
        out.extend(_metric_problems(p, ctx, where))
    out.extend(_model_problems(p, ctx.currency, where))
    out.extend(_prorate_problems(p, where))
    if not blank(p.divide_by):
        if p.model in ("flat", *PERCENTAGES):
            out.append(FieldProblem(f"{where}.divide_by", f"a {p.model} price takes no transform"))
        else:
            whole(p.divide_by, f"{where}.divide_by", out, minimum=1)
    return out


def in_advance(p: PriceSpec) -> bool:
    """Billed at the period's start: as set, else by default when it has no metric."""
    return p.timing == "in_advance" or (blank(p.timing) and blank(p.metric))


def _prorate_problems(p: PriceSpec, where: str) -> list[FieldProblem]:
    """Proration (FORMATS §1) is an in-advance price's: a part period charged by its days."""
    if blank(p.prorate):
        return []
    if p.prorate not in ("true", "false"):
        return [FieldProblem(f"{where}.prorate", "prorate or charge the whole period")]
    if p.model in PERCENTAGES or not in_advance(p):
        return [
            FieldProblem(f"{where}.prorate", "only a price billed in advance prorates; this one is billed for usage")
        ]
    return []


def _money_check(value: str, fld: str, out: list[FieldProblem], currency: str) -> None:
    amount(value, fld, out, currency=currency)


def _unit_check(value: str, fld: str, out: list[FieldProblem], currency: str) -> None:
    amount(value, fld, out, currency=currency, unit=True)


def _count_check(minimum: int) -> Callable[[str, str, list[FieldProblem], str], None]:
    def check(value: str, fld: str, out: list[FieldProblem], currency: str) -> None:
        whole(value, fld, out, minimum=minimum)

    return check


def _rate_check(value: str, fld: str, out: list[FieldProblem], currency: str) -> None:
    percent(value, fld, out)


# Per model, its fields in the order they are checked: (field, required, check when given).
_MODEL_FIELDS: dict[str, tuple[tuple[str, bool, Callable[[str, str, list[FieldProblem], str], None]], ...]] = {
    "flat": (("amount", True, _money_check),),
    "per_unit": (("unit_amount", True, _unit_check), ("included", False, _count_check(0))),
    "package": (
        ("package_size", True, _count_check(1)),
        ("amount", True, _money_check),
        ("free_units", False, _count_check(0)),
    ),
    "percentage": (
        ("rate", True, _rate_check),
        ("free_units", False, _count_check(0)),
        *(
            (key, False, _money_check)
            for key in ("fixed_amount", "free_amount", "min_per_transaction", "max_per_transaction")
        ),
    ),
}


def _model_problems(p: PriceSpec, currency: str, where: str) -> list[FieldProblem]:
    if p.model in TIERED:
        return tier_problems(p.tiers, p.model, currency, f"{where}.tiers")
    out: list[FieldProblem] = []
    for key, required, check in _MODEL_FIELDS[p.model]:
        value = getattr(p, key)
        if not blank(value):
            check(value, f"{where}.{key}", out, currency)
        elif required:
            out.append(FieldProblem(f"{where}.{key}", f"a {p.model} price needs it"))
    return out


def entitlement_problems(e: EntitlementSpec, ctx: CatalogContext, where: str) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    ftype = ctx.features.get(e.feature)
    if ftype is None:
        known = ", ".join(sorted(ctx.features)) or "none"
        return [FieldProblem(f"{where}.feature", f"there is no feature {e.feature!r}; the catalog has {known}")]
    if ftype == "boolean" and str(e.value).strip().lower() not in ("true", "false", "yes", "no"):
        out.append(FieldProblem(f"{where}.value", "a yes/no feature: write true or false"))
    if ftype == "quantity" and not blank(e.value) and str(e.value).strip().lower() != "true":
        whole(e.value, f"{where}.value", out)
    if ftype == "metered":
        if not blank(e.limit):
            whole(e.limit, f"{where}.limit", out)
        if e.period not in PERIODS:
            out.append(FieldProblem(f"{where}.period", f"one of {', '.join(PERIODS)}"))
        if e.overage not in OVERAGES:
            out.append(FieldProblem(f"{where}.overage", f"one of {', '.join(OVERAGES)}"))
    return out


def plan_problems(spec: PlanSpec, ctx: CatalogContext) -> list[FieldProblem]:
    """Every problem of the form, each naming its field."""
    out: list[FieldProblem] = []
    if not ye.IDENTIFIER.match(spec.id or ""):
        out.append(
            FieldProblem("id", "a plan id is lower case letters, digits, '-', '_' or '.', starting with a letter")
        )
    if blank(spec.name):
        out.append(FieldProblem("name", "give the plan the name customers see"))
    if spec.interval not in INTERVALS:
        out.append(FieldProblem("interval", f"one of {', '.join(INTERVALS)}"))
    if not blank(spec.trial_days):
        whole(spec.trial_days, "trial_days", out)
    if not blank(spec.minimum_amount):
        amount(spec.minimum_amount, "minimum_amount", out, currency=ctx.currency)
    for i, target in enumerate(spec.upgrade_to):
        if target == spec.id:
            out.append(FieldProblem(f"upgrade_to[{i + 1}]", "a plan cannot upgrade to itself"))
        elif target not in ctx.plans:
            out.append(FieldProblem(f"upgrade_to[{i + 1}]", f"there is no plan {target!r} in this catalog"))
    seen: set[str] = set()
    for n, price in enumerate(spec.prices, 1):
        where = f"prices[{n}]"
        if not ye.IDENTIFIER.match(price.id or ""):
            out.append(FieldProblem(f"{where}.id", "a price id is lower case letters, digits, '-' or '_'"))
        elif price.id in seen:
            out.append(FieldProblem(f"{where}.id", f"another price of this plan is already called {price.id!r}"))
        seen.add(price.id)
        out.extend(price_problems(price, ctx, where))
    for n, ent in enumerate(spec.entitlements, 1):
        out.extend(entitlement_problems(ent, ctx, f"entitlements[{n}]"))
    return out


# Writing ------------------------------------------------------------------------------------


def _money(value: str) -> DoubleQuotedScalarString:
    return DoubleQuotedScalarString(money_text(Decimal(str(value).strip())))


def _flag(value: str) -> bool:
    return value.strip() == "true"


def _number(value: str) -> int | float:
    return ye.percentage(Decimal(str(value).strip()))


def _tier_yaml(t: TierSpec, model: str) -> CommentedMap:
    row: dict[str, Any] = {"up_to": None if blank(t.up_to) else int(Decimal(t.up_to))}
    if model == "graduated_percentage":
        row["rate"] = _number(t.rate)
    elif not blank(t.unit_amount):
        row["unit_amount"] = _money(t.unit_amount)
    if not blank(t.flat_amount):
        row["flat_amount"] = _money(t.flat_amount)
    return ye.flow(row)


def _included_tiers(p: PriceSpec) -> list[TierSpec]:
    """Units included with a per-unit price: a free first tier, then the unit price."""
    return [TierSpec(up_to=str(int(Decimal(p.included))), unit_amount="0"), TierSpec(unit_amount=p.unit_amount)]


def _int(value: str) -> int:
    return int(Decimal(value))


# Per model, the fields written after name, model, metric and timing, in the catalog's order
# (a unit amount only on a per-unit price; counts only where the model takes them).
_FEES: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("amount", _money),
    ("fixed_amount", _money),
    ("free_amount", _money),
    ("min_per_transaction", _money),
    ("max_per_transaction", _money),
)
_COUNTS: tuple[tuple[str, Callable[[str], Any]], ...] = (("package_size", _int), ("free_units", _int))
_WRITTEN = {
    "per_unit": (_FEES[0], ("unit_amount", _money), *_FEES[1:]),
    "percentage": (*_FEES, ("rate", _number), *_COUNTS),
    "package": (*_FEES, *_COUNTS),
}


def _written_model(p: PriceSpec) -> tuple[str, list[TierSpec]]:
    """Units included with a per-unit price are written as a graduated price."""
    if p.model == "per_unit" and not blank(p.included) and _int(p.included) > 0:
        return "graduated", _included_tiers(p)
    return p.model, p.tiers


def price_yaml(p: PriceSpec) -> CommentedMap:
    """The price as the catalog writes it: fields left blank are left out, and only the fields
    its model takes (a checked form: `price_problems` found nothing)."""
    model, tiers = _written_model(p)
    fields: list[tuple[str, str, Callable[[str], Any]]] = [
        ("name", p.name, str.strip),
        ("description", p.description, str.strip),
        ("model", model, str),
        ("metric", p.metric, str),
        ("timing", p.timing, str),
        ("prorate", p.prorate, _flag),
        *((key, getattr(p, key), write) for key, write in _WRITTEN.get(model, _FEES)),
    ]
    row: dict[str, Any] = {"id": p.id, **{key: write(value) for key, value, write in fields if not blank(value)}}
    if model in TIERED:
        row["tiers"] = CommentedSeq([_tier_yaml(t, model) for t in tiers])
    if not blank(p.divide_by):
        row["transform"] = ye.flow({"divide_by": _int(p.divide_by), "round": p.round or "up"})
    out = CommentedMap(row)
    if model not in TIERED:
        out.fa.set_flow_style()
    return out


def entitlement_yaml(e: EntitlementSpec, ftype: str) -> Any:
    if ftype == "boolean":
        return str(e.value).strip().lower() in ("true", "yes")
    if ftype == "quantity":
        return True if blank(e.value) or str(e.value).strip().lower() == "true" else int(Decimal(e.value))
    return ye.flow(
        {"limit": None if blank(e.limit) else int(Decimal(e.limit)), "period": e.period, "overage": e.overage}
    )


def _plan_fields(spec: PlanSpec, ctx: CatalogContext) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": spec.name.strip()}
    if not blank(spec.description):
        fields["description"] = spec.description.strip()
    fields["interval"] = spec.interval
    if not blank(spec.trial_days) and int(Decimal(spec.trial_days)) > 0:
        fields["trial_days"] = int(Decimal(spec.trial_days))
    if not blank(spec.minimum_amount):
        fields["minimum_amount"] = _money(spec.minimum_amount)
    if spec.upgrade_to:
        fields["upgrade_to"] = ye.flow_seq(spec.upgrade_to)
    prices = CommentedSeq([price_yaml(p) for p in spec.prices])
    if not spec.prices:
        prices.fa.set_flow_style()
    fields["prices"] = prices
    if spec.entitlements:
        fields["entitlements"] = CommentedMap(
            (e.feature, entitlement_yaml(e, ctx.features[e.feature])) for e in spec.entitlements
        )
    return fields


def write_plan(text: str, spec: PlanSpec, *, original_id: str | None = None) -> str:
    """Add the plan (original_id None) or replace the plan `original_id` with it, in place so
    the comments around it stay. FormInvalid, naming every field, when the form has problems."""
    data = ye.load(text)
    ctx = CatalogContext.of(data)
    plans = data.setdefault("plans", CommentedMap())
    others = ctx.plans - {original_id} if original_id else ctx.plans
    problems = plan_problems(spec, CatalogContext(ctx.currency, others | {spec.id}, ctx.metrics, ctx.features))
    if spec.id in others:
        problems.insert(0, FieldProblem("id", f"a plan {spec.id!r} already exists; pick another id"))
    if original_id is not None and original_id not in plans:
        problems.insert(0, FieldProblem("id", f"there is no plan {original_id!r} to change"))
    if problems:
        raise FormInvalid(problems)
    fields = _plan_fields(spec, ctx)
    if original_id is None:
        plans[spec.id] = CommentedMap(fields)
        return ye.dump(data)
    plan = plans[original_id]
    # Only what the form holds is replaced: the plan's other settings (interval_count,
    # credits, budget, progressive_billing) stay as the YAML has them.
    for key in [k for k in plan if k in FORM_KEYS and k not in fields]:
        del plan[key]
    for key, value in fields.items():
        plan[key] = value
    if spec.id != original_id:
        _rename_plan(data, original_id, spec.id)
    return ye.dump(data)


def _rename_plan(data: Any, old: str, new: str) -> None:
    plans = data["plans"]
    position = list(plans).index(old)
    plans.insert(position, new, plans.pop(old))
    for other in plans.values():
        targets = other.get("upgrade_to") if isinstance(other, dict) else None
        if isinstance(targets, list) and old in targets:
            targets[targets.index(old)] = new


# Reading a plan back --------------------------------------------------------------------------


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _price_spec(raw: dict[str, Any]) -> PriceSpec:
    keys = (
        "amount",
        "unit_amount",
        "package_size",
        "free_units",
        "rate",
        "fixed_amount",
        "free_amount",
        "min_per_transaction",
        "max_per_transaction",
        "description",
    )
    transform = raw.get("transform") or {}
    return PriceSpec(
        id=_s(raw.get("id")),
        model=_s(raw.get("model")),
        name=_s(raw.get("name")),
        metric=_s(raw.get("metric")),
        timing=_s(raw.get("timing")),
        tiers=[
            TierSpec(*(_s(t.get(k)) for k in ("up_to", "unit_amount", "flat_amount", "rate")))
            for t in raw.get("tiers") or []
            if isinstance(t, dict)
        ],
        divide_by=_s(transform.get("divide_by")),
        prorate="" if raw.get("prorate") is None else "true" if raw.get("prorate") else "false",
        round=_s(transform.get("round") or "up"),
        **{k: _s(raw.get(k)) for k in keys},
    )


def _entitlement_spec(fid: str, raw: Any) -> EntitlementSpec:
    if isinstance(raw, dict):
        return EntitlementSpec(
            fid, "", _s(raw.get("limit")), _s(raw.get("period") or "month"), _s(raw.get("overage") or "block")
        )
    return EntitlementSpec(fid, "true" if raw is True else "false" if raw is False else _s(raw))


def plan_spec(text: str, plan_id: str) -> PlanSpec:
    plan = ye.plan_of(ye.load(text), plan_id)
    return PlanSpec(
        id=plan_id,
        name=_s(plan.get("name")),
        interval=_s(plan.get("interval") or "month"),
        description=_s(plan.get("description")),
        trial_days=_s(plan.get("trial_days")),
        minimum_amount=_s(plan.get("minimum_amount")),
        upgrade_to=[str(x) for x in plan.get("upgrade_to") or []],
        prices=[_price_spec(p) for p in plan.get("prices") or [] if isinstance(p, dict)],
        entitlements=[_entitlement_spec(str(f), v) for f, v in (plan.get("entitlements") or {}).items()],
    )
