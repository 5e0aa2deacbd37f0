"""The promotion builder's model: forms for the common rules, written into a ruleset draft's
YAML (FORMATS §2; comments kept), and coupons written into a catalog draft (FORMATS §1).

Each form is a dataclass; `*_problems` names every bad field against what the rules may refer
to (`engine.rules.References`: the published plans, prices, features, coupons, templates);
`write_*` appends the rule (FormInvalid and nothing written when a field is wrong). Publishing
then validates the whole ruleset again, as `billing publish` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from engine.console import yaml_edit as ye
from engine.console.fields import FieldProblem, FormInvalid, amount, blank, date_range, money_text, percent, whole
from engine.rules import References

# FORMATS §3: the events the engine publishes, for the notification form.
ENGINE_EVENTS = (
    "customer.created",
    "subscription.created",
    "subscription.trial_will_end",
    "subscription.renewed",
    "subscription.changed",
    "subscription.canceled",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.overdue",
    "payment.succeeded",
    "payment.failed",
    "payment.refunded",
    "usage.threshold_reached",
    "access.denied",
    "dunning.state_changed",
)
CHANNELS = ("email", "sms", "in_app", "webhook")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# A discount's kind -> the check of its value, and what to say when it is missing or zero.
OFF: dict[str, tuple[Callable[[Any, str, list[FieldProblem]], Decimal | None], str]] = {
    "percent": (percent, "give the percentage off, above 0 and at most 100"),
    "amount": (amount, "give the amount off, above 0"),
}


@dataclass
class PromotionSpec:
    """Who gets what, when: a pricing rule on `price.calculate`."""

    id: str
    description: str = ""
    segments: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    kind: str = "percent"  # percent | amount | coupon
    value: str = ""  # the percent, the amount, or the coupon code
    prices: list[str] = field(default_factory=list)  # empty: the whole bill
    periods: str = ""  # empty: every period
    reason: str = ""
    valid_from: str = ""
    valid_until: str = ""


@dataclass
class AccessRuleSpec:
    """allow_tag: a feature for customers with a tag; deny_suspended: every feature but some
    while the account is suspended."""

    id: str
    case: str = "allow_tag"  # allow_tag | deny_suspended
    feature: str = ""
    tag: str = ""
    except_features: list[str] = field(default_factory=list)
    reason: str = ""
    description: str = ""


@dataclass
class NotificationRuleSpec:
    id: str
    event: str = "invoice.finalized"
    template: str = ""
    channels: list[str] = field(default_factory=lambda: ["email"])
    description: str = ""


@dataclass
class CouponSpec:
    code: str
    kind: str = "percent"  # percent | amount
    value: str = ""
    duration: str = "once"  # once | repeating | forever
    periods: str = ""
    applies_to: list[str] = field(default_factory=list)
    max_redemptions: str = ""
    expires: str = ""
    name: str = ""


def _known(refs: References, kind: str, values: list[str], fld: str, what: str) -> list[FieldProblem]:
    known: set[str] | None = getattr(refs, kind)
    if known is None:
        return []
    listing = ", ".join(sorted(known)) or "none"
    return [
        FieldProblem(f"{fld}[{i}]" if len(values) > 1 else fld, f"there is no {what} {v!r}; known: {listing}")
        for i, v in enumerate(values, 1)
        if v not in known
    ]


def _rule_id_problems(rule_id: str, existing: Collection[str]) -> list[FieldProblem]:
    if not RULE_ID.match(rule_id or ""):
        return [FieldProblem("id", "a rule id is lower case letters, digits, '-', '_' or '.'")]
    if rule_id in existing:
        return [FieldProblem("id", f"the ruleset already has a rule {rule_id!r}; pick another id")]
    return []


def promotion_problems(spec: PromotionSpec, refs: References, existing: Collection[str] = ()) -> list[FieldProblem]:
    out = _rule_id_problems(spec.id, set(existing))
    out += _known(refs, "plans", spec.plans, "plans", "plan")
    out += _known(refs, "prices", spec.prices, "prices", "price")
    for key in spec.attributes:
        if not ye.IDENTIFIER.match(key):
            out.append(FieldProblem("attributes", f"{key!r} is not an attribute name (lower case, digits, '_')"))
    for c in spec.countries:
        if len(c) != 2 or not c.isalpha() or not c.isupper():
            out.append(FieldProblem("countries", f"{c!r} is not a country code such as DE or FR"))
    if spec.kind in OFF:
        check, needed = OFF[spec.kind]
        if blank(spec.value) or check(spec.value, "value", out) == 0:
            out.append(FieldProblem("value", needed))
    elif spec.kind == "coupon":
        out += (
            _known(refs, "coupons", [spec.value], "value", "coupon")
            if not blank(spec.value)
            else [FieldProblem("value", "pick the coupon the rule gives")]
        )
    else:
        out.append(FieldProblem("kind", "percent, amount or coupon"))
    if not blank(spec.periods):
        whole(spec.periods, "periods", out, minimum=1)
    date_range(spec.valid_from, spec.valid_until, out)
    return out


def _condition(tests: list[dict[str, Any]]) -> Any:
    if len(tests) == 1:
        return ye.flow(tests[0])
    return CommentedMap({"all": CommentedSeq(ye.flow(t) for t in tests)})


def _one_or_in(path: str, values: list[str]) -> dict[str, Any]:
    return {path: values[0]} if len(values) == 1 else {path: ye.flow({"in": ye.flow_seq(values)})}


def _promotion_when(spec: PromotionSpec) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = []
    if spec.segments:
        tests.append(_one_or_in("customer.segment", spec.segments))
    tests += [{"customer.tags": ye.flow({"contains": t})} for t in spec.tags]
    if spec.plans:
        tests.append(_one_or_in("plan", spec.plans))
    if spec.countries:
        tests.append(_one_or_in("customer.country", spec.countries))
    tests += [{f"customer.attributes.{k}": v} for k, v in spec.attributes.items()]
    return tests


def _promotion_action(spec: PromotionSpec) -> CommentedMap:
    if spec.kind == "coupon":
        return ye.flow({"apply_coupon": ye.flow({"code": spec.value.strip()})})
    params: dict[str, Any] = {}
    if spec.kind == "percent":
        params["percent"] = ye.percentage(Decimal(spec.value.strip()))
    else:
        params["amount"] = DoubleQuotedScalarString(money_text(Decimal(spec.value.strip())))
    if spec.prices:
        params["prices"] = ye.flow_seq(spec.prices)
    if not blank(spec.periods):
        params["periods"] = int(Decimal(spec.periods))
    params["reason"] = spec.reason.strip() or spec.description.strip() or spec.id
    return ye.flow({"discount": ye.flow(params)})


def promotion_rule(spec: PromotionSpec) -> CommentedMap:
    rule = CommentedMap({"id": spec.id.strip()})
    if not blank(spec.description):
        rule["description"] = spec.description.strip()
    rule["on"] = "price.calculate"
    a, b = date_range(spec.valid_from, spec.valid_until, [])
    if a is not None:
        rule["valid_from"] = a
    if b is not None:
        rule["valid_until"] = b
    tests = _promotion_when(spec)
    if tests:
        rule["when"] = _condition(tests)
    rule["then"] = CommentedSeq([_promotion_action(spec)])
    return rule


def _append(text: str, problems: list[FieldProblem], rule: Any) -> str:
    if problems:
        raise FormInvalid(problems)
    data = ye.load(text)
    rules = data.setdefault("rules", CommentedSeq())
    rules.append(rule)
    return ye.dump(data)


def rule_ids(text: str) -> set[str]:
    return {str(r["id"]) for r in ye.rules_of(text) if r.get("id") is not None}


def write_promotion(text: str, spec: PromotionSpec, refs: References) -> str:
    problems = promotion_problems(spec, refs, rule_ids(text))
    return _append(text, problems, None if problems else promotion_rule(spec))


# Access and notification rules -------------------------------------------------------------


def access_problems(spec: AccessRuleSpec, refs: References, existing: Collection[str]) -> list[FieldProblem]:
    out = _rule_id_problems(spec.id, existing)
    if spec.case == "allow_tag":
        if blank(spec.feature):
            out.append(FieldProblem("feature", "pick the feature to allow"))
        else:
            out += _known(refs, "features", [spec.feature], "feature", "feature")
        if blank(spec.tag):
            out.append(FieldProblem("tag", "give the customer tag that unlocks it"))
    elif spec.case == "deny_suspended":
        out += _known(refs, "features", spec.except_features, "except_features", "feature")
    else:
        out.append(FieldProblem("case", "allow_tag or deny_suspended"))
    return out


def access_rule(spec: AccessRuleSpec) -> CommentedMap:
    rule = CommentedMap({"id": spec.id.strip()})
    if not blank(spec.description):
        rule["description"] = spec.description.strip()
    rule["on"] = "access.check"
    if spec.case == "allow_tag":
        rule["when"] = _condition(
            [{"customer.tags": ye.flow({"contains": spec.tag.strip()})}, {"feature": spec.feature}]
        )
        action = {"allow": ye.flow({"reason": spec.reason.strip() or f"{spec.tag.strip()}_{spec.feature}"})}
    else:
        rule["priority"] = 10  # before any allow: deny wins, and says why first
        tests: list[dict[str, Any]] = [{"account.dunning_state": "suspended"}]
        if spec.except_features:
            tests.append({"feature": ye.flow({"not_in": ye.flow_seq(spec.except_features)})})
        rule["when"] = _condition(tests)
        action = {"deny": ye.flow({"reason": spec.reason.strip() or "payment_overdue"})}
    rule["then"] = CommentedSeq([ye.flow(action)])
    return rule


def write_access_rule(text: str, spec: AccessRuleSpec, refs: References) -> str:
    problems = access_problems(spec, refs, rule_ids(text))
    return _append(text, problems, None if problems else access_rule(spec))


def notification_problems(
    spec: NotificationRuleSpec, refs: References, existing: Collection[str]
) -> list[FieldProblem]:
    out = _rule_id_problems(spec.id, existing)
    if spec.event not in ENGINE_EVENTS:
        out.append(FieldProblem("event", f"{spec.event!r} is not an event the engine sends"))
    if blank(spec.template):
        out.append(FieldProblem("template", "pick the message template"))
    else:
        out += _known(refs, "templates", [spec.template], "template", "template")
    if not spec.channels:
        out.append(FieldProblem("channels", "pick at least one channel"))
    out += [
        FieldProblem("channels", f"{c!r} is not a channel; one of {', '.join(CHANNELS)}")
        for c in spec.channels
        if c not in CHANNELS
    ]
    return out


def notification_rule(spec: NotificationRuleSpec) -> CommentedMap:
    rule = CommentedMap({"id": spec.id.strip()})
    if not blank(spec.description):
        rule["description"] = spec.description.strip()
    rule["on"] = spec.event
    notify = {"template": spec.template, "channels": ye.flow_seq(spec.channels)}
    rule["then"] = CommentedSeq([ye.flow({"notify": ye.flow(notify)})])
    return rule


def write_notification_rule(text: str, spec: NotificationRuleSpec, refs: References) -> str:
    problems = notification_problems(spec, refs, rule_ids(text))
    return _append(text, problems, None if problems else notification_rule(spec))


# Coupons (a catalog draft) ----------------------------------------------------------------------


def coupon_problems(spec: CouponSpec, data: Any, today: date | None = None, used: int = 0) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    catalog = data if isinstance(data, dict) else {}
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", spec.code or ""):
        out.append(FieldProblem("code", "letters, digits, '-' or '_', such as SPRING25"))
    elif spec.code in (catalog.get("coupons") or {}):
        out.append(FieldProblem("code", f"a coupon {spec.code!r} already exists"))
    if blank(spec.value):
        out.append(FieldProblem("value", "give the percentage or the amount off"))
    elif spec.kind == "percent":
        percent(spec.value, "value", out)
    else:
        amount(spec.value, "value", out, currency=str(catalog.get("currency") or "USD"))
    out += _duration_problems(spec)
    plans = set(catalog.get("plans") or {})
    out += [
        FieldProblem("applies_to", f"there is no plan {p!r} in this catalog") for p in spec.applies_to if p not in plans
    ]
    out += _limit_problems(spec.max_redemptions, spec.expires, used, today)
    return out


def _limit_problems(max_redemptions: str, expires: str, used: int, today: date | None) -> list[FieldProblem]:
    """A limit (empty: none) of at least 1 and not below the redemptions so far; an expiry
    (empty: never) not passed already."""
    out: list[FieldProblem] = []
    if not blank(max_redemptions):
        limit = whole(max_redemptions, "max_redemptions", out, minimum=1)
        if limit is not None and limit < used:
            out.append(
                FieldProblem("max_redemptions", f"{used:,} redemptions so far: the limit cannot be below {used:,}")
            )
    _, end = date_range(None, expires, out, end_field="expires")  # None when left blank
    if end is not None and today is not None and end < today:
        out.append(FieldProblem("expires", f"{end.isoformat()} has passed already"))
    return out


def _duration_problems(spec: CouponSpec) -> list[FieldProblem]:
    """Once, repeating (for a whole number of periods) or forever."""
    out: list[FieldProblem] = []
    if spec.duration not in ("once", "repeating", "forever"):
        out.append(FieldProblem("duration", "once, repeating or forever"))
    if spec.duration == "repeating":
        if blank(spec.periods):
            out.append(FieldProblem("periods", "a repeating coupon needs how many periods it lasts"))
        else:
            whole(spec.periods, "periods", out, minimum=1)
    return out


def write_coupon(text: str, spec: CouponSpec, today: date | None = None, used: int = 0) -> str:
    data = ye.load(text)
    problems = coupon_problems(spec, data, today, used)
    if problems:
        raise FormInvalid(problems)
    c: dict[str, Any] = {}
    if not blank(spec.name):
        c["name"] = spec.name.strip()
    d = Decimal(spec.value.strip())
    if spec.kind == "percent":
        c["percent_off"] = ye.percentage(d)
    else:
        c["amount_off"] = DoubleQuotedScalarString(money_text(d))
    c["duration"] = spec.duration
    if spec.duration == "repeating":
        c["periods"] = int(Decimal(spec.periods))
    if spec.applies_to:
        c["applies_to"] = ye.flow_seq(spec.applies_to)
    if not blank(spec.max_redemptions):
        c["max_redemptions"] = int(Decimal(spec.max_redemptions))
    if not blank(spec.expires):
        c["expires"] = date.fromisoformat(str(spec.expires).strip())
    coupons = data.get("coupons")
    if coupons is None:
        coupons = data["coupons"] = CommentedMap()
    coupons[spec.code.strip()] = ye.flow(c)
    return ye.dump(data)


def update_coupon_limits(
    text: str, code: str, max_redemptions: str, expires: str, used: int, today: date | None = None
) -> str:
    """Change a coupon's redemption limit and expiry (empty: none, never), its other fields and
    the comments kept. `used`, the redemptions so far, is the lowest limit allowed."""
    data = ye.load(text)
    coupon = (data.get("coupons") or {}).get(code) if isinstance(data, dict) else None
    if not isinstance(coupon, dict):
        raise FormInvalid([FieldProblem("code", f"there is no coupon {code!r} in this catalog")])
    problems = _limit_problems(max_redemptions, expires, used, today)
    if problems:
        raise FormInvalid(problems)
    for key, value in (
        ("max_redemptions", None if blank(max_redemptions) else int(Decimal(max_redemptions))),
        ("expires", None if blank(expires) else date.fromisoformat(str(expires).strip())),
    ):
        if value is None:
            coupon.pop(key, None)
        else:
            coupon[key] = value
    return ye.dump(data)
