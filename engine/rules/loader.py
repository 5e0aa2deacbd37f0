"""Loading rulesets: schema, what the schema cannot see, references to the catalog and the
templates, and the typed model. Errors read exactly like catalog errors:
`file:line: json.path: message`, every problem at once, nothing applied."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.catalog import Catalog
from engine.documents import (
    Document,
    DocumentError,
    Problem,
    load_yaml_file,
    load_yaml_text,
    schema_problems,
)
from engine.durations import parse_duration
from engine.rules.conditions import ConditionError, Node, parse_condition, tests
from engine.rules.model import ACTIONS, DEFAULT_STATES, ActionSpec, Rule, Ruleset

SCHEMA_PACKAGE = "engine.rules.schemas"
SCHEMA_NAME = "rules.schema.json"


@dataclass
class References:
    """What rules may refer to. `None` for a kind means "not known here: do not check"."""

    plans: set[str] | None = None
    prices: set[str] | None = None
    features: set[str] | None = None
    metrics: set[str] | None = None
    coupons: set[str] | None = None
    grants: set[str] | None = None  # the catalogs' promotional credit grants (credits.grants)
    templates: set[str] | None = None
    catalogs: list[str] = field(default_factory=list)

    @classmethod
    def from_catalogs(cls, catalogs: Iterable[Catalog], templates: Path | str | None = None) -> References:
        refs = cls(templates=template_names(templates) if templates is not None else None)
        for c in catalogs:
            refs.add_catalog(c)
        return refs

    def add_catalog(self, c: Catalog) -> None:
        found = {
            "plans": set(c.plans),
            "prices": {p.id for plan in c.plans.values() for p in plan.prices},
            "features": set(c.features),
            "metrics": set(c.metrics),
            "coupons": set(c.coupons),
            "grants": set(c.credits.grants) if c.credits is not None else set(),
        }
        for kind, names in found.items():  # None (not checked) becomes this catalog's names
            setattr(self, kind, (getattr(self, kind) or set()) | names)
        self.catalogs.append(c.name)


_LOCALE = re.compile(r"^[a-z]{2}([_-][A-Za-z]{2})?$")


def template_names(root: Path | str) -> set[str]:
    """A template NAME is known if a file `templates/<channel>/[<locale>/]NAME.*` or a
    directory `templates/<channel>/NAME/` exists (messaging owns the layout; `_layout`-style
    partials and locale directories are not templates)."""
    base = Path(root)
    names: set[str] = set()
    for p in base.rglob("*"):  # nothing when `root` is not a directory
        depth = len(p.relative_to(base).parts)
        if p.is_file() and depth >= 2:
            stem = p.name.split(".", 1)[0]
        elif p.is_dir() and depth == 2 and not _LOCALE.match(p.name):
            stem = p.name
        else:
            continue
        if stem and not stem.startswith(("_", ".")):
            names.add(stem)
    return names


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _when(text: str, field_name: str, end: bool) -> datetime:
    """valid_from / valid_until: a date means the start (from) or the end (until) of that day
    in UTC; a datetime without a zone is UTC."""
    if len(text) == 10:
        d = date.fromisoformat(text)
        start = datetime(d.year, d.month, d.day, tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _cron_problem(expr: str) -> str | None:
    try:
        from apscheduler.triggers.cron import CronTrigger

        CronTrigger.from_crontab(expr, timezone="UTC")
    except ValueError as exc:
        return f"{expr!r} is not a cron expression (minute hour day month weekday): {exc}"
    return None


_ACTION_PATH = re.compile(r"^rules\[\d+\]\.then\[\d+\]\.([^.\[]+)$")


def _friendlier(p: Problem) -> Problem:
    m = _ACTION_PATH.match(p.path)
    if m and p.message.startswith("unknown field"):
        return Problem(
            p.file, p.line, p.path, f"unknown action {m.group(1)!r}; actions are {', '.join(ACTIONS)}", p.severity
        )
    return p


def _number(value: Any) -> Decimal:
    return Decimal(str(value))


def _params(name: str, raw: Any) -> dict[str, Any]:
    params = dict(raw or {})
    typed = _TYPED_PARAMS.get(name)
    return params if typed is None else typed(params)


def _discount_params(params: dict[str, Any]) -> dict[str, Any]:
    for k in ("percent", "amount"):
        if k in params:
            params[k] = _number(params[k])
    if "prices" in params:
        params["prices"] = tuple(params["prices"])
    return params


def _charge_params(params: dict[str, Any]) -> dict[str, Any]:
    params["amount"] = _number(params["amount"])
    return params


def _cancel_params(params: dict[str, Any]) -> dict[str, Any]:
    params.setdefault("at", "period_end")
    return params


def _notify_params(params: dict[str, Any]) -> dict[str, Any]:
    params["channels"] = tuple(params.get("channels", ["email"]))
    return params


def _tag_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) for k, v in params.items()}


# An action's parameters as the runtime reads them: numbers as Decimal, lists as tuples,
# defaults filled in (the others are taken as written).
_TYPED_PARAMS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "discount": _discount_params,
    "charge": _charge_params,
    "cancel_subscription": _cancel_params,
    "notify": _notify_params,
    "tag": _tag_params,
}


_VALUE_REFS = {  # condition paths whose equality values name catalog things
    "plan": "plans",
    "subscription.plan": "plans",
    "offer.plan": "plans",
    "price": "prices",
    "feature": "features",
    "coupon": "coupons",
    "subscription.coupon": "coupons",
}


def _fix_on_keys(doc: Document) -> None:
    """YAML 1.1 reads the key `on:` as the boolean true; FORMATS means the field `on`."""
    rules = doc.data.get("rules")  # the caller checked that the document is a mapping
    if not isinstance(rules, list):
        return
    for i, rule in enumerate(rules):
        if isinstance(rule, dict) and True in rule and "on" not in rule:
            rules[i] = {("on" if k is True else k): v for k, v in rule.items()}
            for path in [p for p in doc.lines if p[:3] == ("rules", i, "True")]:
                doc.lines[("rules", i, "on", *path[3:])] = doc.lines.pop(path)


def ruleset_as_far_as_it_goes(doc: Document, refs: References | None = None) -> tuple[Ruleset | None, list[Problem]]:
    """Every problem of a ruleset document, and the ruleset built in spite of those only code
    finds (an unknown template, a bad cron): lint still analyses its conditions. None when
    the document's shape is wrong (the schema's problems): nothing can be built then."""
    if not isinstance(doc.data, dict):
        return None, [doc.problem([], "a ruleset is a mapping with ruleset and rules")]
    _fix_on_keys(doc)
    problems = [_friendlier(p) for p in schema_problems(doc, SCHEMA_PACKAGE, SCHEMA_NAME)]
    broken = {int(m.group(1)) for p in problems if (m := _IN_A_RULE.match(p.path))}
    if broken and all(_IN_A_RULE.match(p.path) for p in problems):
        # Only some rules are misshapen: the others are built (and checked) without them.
        ruleset, found = _build(doc, refs or References(), skip=broken)
        return ruleset, sorted(problems + found, key=lambda p: (p.line, p.path))
    if problems:
        return None, problems
    ruleset, found = _build(doc, refs or References())
    return ruleset, sorted(found, key=lambda p: (p.line, p.path))


_IN_A_RULE = re.compile(r"^rules\[([0-9]+)\]")


def _build(doc: Document, refs: References, skip: Collection[int] = ()) -> tuple[Ruleset, list[Problem]]:
    data = doc.data
    check = _RuleChecks(doc, refs, set(DEFAULT_STATES) | set(data.get("states", [])))
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(data["rules"]):
        if i in skip:
            continue
        base: list[Any] = ["rules", i]
        rid = raw["id"]
        if rid in seen:
            check.out.append(doc.problem([*base, "id"], f"duplicate rule id {rid!r} (also rules[{seen[rid]}])"))
        else:
            seen[rid] = i
        check.trigger(base, raw)
        valid = check.validity(base, raw)
        when = check.condition(base, raw)
        actions: list[ActionSpec] = []
        for j, item in enumerate(raw["then"]):
            ((name, params_raw),) = item.items()
            params = _params(name, params_raw)
            check.action([*base, "then", j, name], name, params)
            actions.append(ActionSpec(name, params))
        on = raw.get("on", ())  # a scheduled rule has none
        rules.append(
            Rule(
                id=rid,
                index=i,
                then=tuple(actions),
                on=(on,) if isinstance(on, str) else tuple(on),
                schedule=raw.get("schedule"),
                for_each=raw.get("for_each"),
                when=when,
                priority=int(raw.get("priority", 100)),
                enabled=bool(raw.get("enabled", True)),
                valid_from=valid.get("valid_from"),
                valid_until=valid.get("valid_until"),
                description=raw.get("description", ""),
            )
        )
    ruleset = Ruleset(
        name=data["ruleset"],
        rules=tuple(rules),
        description=data.get("description", ""),
        states=tuple(sorted(check.states)),
        source=doc.text,
        file=doc.file,
        checksum=_checksum(doc.text),
    )
    return ruleset, check.out


class _RuleChecks:
    """The checks of one ruleset's rules, collecting their problems in the order made."""

    def __init__(self, doc: Document, refs: References, states: set[str]) -> None:
        self.doc = doc
        self.refs = refs
        self.states = states
        self.out: list[Problem] = []

    def problem(self, where: list[Any], message: str) -> None:
        self.out.append(self.doc.problem(where, message))

    def ref(self, kind: str, value: str, where: list[Any], what: str) -> None:
        known: set[str] | None = getattr(self.refs, kind)
        if known is not None and value not in known:
            listing = ", ".join(sorted(known)) or "none"
            self.problem(where, f"unknown {what} {value!r}; known: {listing}")

    def trigger(self, base: list[Any], raw: dict[str, Any]) -> None:
        """`on` (an event) or `schedule` + `for_each`, one of the two."""
        has_on, has_schedule = "on" in raw, "schedule" in raw
        if has_on == has_schedule:  # both, or neither
            if has_on:
                self.problem(
                    [*base, "schedule"], "a rule has either `on` (an event) or `schedule` + `for_each`, not both"
                )
            else:
                self.problem(base, "a rule needs `on` (an event type) or `schedule` + `for_each`")
        if has_schedule != ("for_each" in raw):  # one without the other
            if has_schedule:
                self.problem(
                    [*base, "schedule"], "a scheduled rule needs `for_each` (customer, subscription or invoice)"
                )
            else:
                self.problem([*base, "for_each"], "`for_each` only goes with `schedule`")
        if has_schedule:
            why = _cron_problem(raw["schedule"])
            if why:
                self.problem([*base, "schedule"], why)

    def validity(self, base: list[Any], raw: dict[str, Any]) -> dict[str, datetime]:
        valid: dict[str, datetime] = {}
        for key in ("valid_from", "valid_until"):
            if key in raw:
                try:
                    valid[key] = _when(str(raw[key]), key, key == "valid_until")
                except ValueError as exc:
                    self.problem([*base, key], f"not an ISO date or datetime: {exc}")
        if len(valid) == 2 and valid["valid_until"] <= valid["valid_from"]:
            self.problem([*base, "valid_until"], "ends before it starts (valid_from)")
        return valid

    def condition(self, base: list[Any], raw: dict[str, Any]) -> Node | None:
        if "when" not in raw:
            return None
        try:
            when = parse_condition(raw["when"])
        except ConditionError as exc:
            self.problem([*base, "when", *exc.where], exc.message)
            return None
        for t in tests(when):
            root, _, rest = t.path.partition(".")
            if root == "usage" and rest:
                self.ref("metrics", rest.split(".")[0], [*base, "when"], "metric")
            kind = _VALUE_REFS.get(t.path)
            if kind and t.op in ("eq", "ne", "in", "not_in"):
                values = t.value if isinstance(t.value, tuple) else (t.value,)
                for v in values:
                    if isinstance(v, str):
                        self.ref(kind, v, [*base, "when"], kind.rstrip("s"))
        return when

    def action(self, where: list[Any], name: str, params: dict[str, Any]) -> None:
        check = _ACTION_CHECKS.get(name)
        if check is not None:
            check(self, where, params)

    def notify(self, where: list[Any], params: dict[str, Any]) -> None:
        self.ref("templates", params["template"], [*where, "template"], "template")

    def discount(self, where: list[Any], params: dict[str, Any]) -> None:
        for k, pid in enumerate(params.get("prices", ())):
            self.ref("prices", pid, [*where, "prices", k], "price")
        if "percent" in params and params["percent"] > 100:
            self.problem([*where, "percent"], "cannot be more than 100")

    def apply_coupon(self, where: list[Any], params: dict[str, Any]) -> None:
        self.ref("coupons", params["code"], [*where, "code"], "coupon")

    def grant_credit(self, where: list[Any], params: dict[str, Any]) -> None:
        self.ref("grants", params["grant"], [*where, "grant"], "credit grant")

    def deny(self, where: list[Any], params: dict[str, Any]) -> None:
        """The offer a denial makes names a known plan and coupon."""
        offer = params.get("offer", {})  # an object when given (schema)
        for key, kind in (("plan", "plans"), ("coupon", "coupons")):
            if key in offer:
                self.ref(kind, offer[key], [*where, "offer", key], key)

    def set_dunning_state(self, where: list[Any], params: dict[str, Any]) -> None:
        if params["state"] not in self.states:
            self.problem(
                [*where, "state"],
                f"unknown dunning state {params['state']!r}; "
                f"known: {', '.join(sorted(self.states))} (add it to `states`)",
            )

    def retry_payment(self, where: list[Any], params: dict[str, Any]) -> None:
        try:
            parse_duration(params["after"])
        except ValueError as exc:
            self.problem([*where, "after"], str(exc))


# What is checked of each action's parameters beyond the schema (references, ranges).
_ACTION_CHECKS: dict[str, Callable[[_RuleChecks, list[Any], dict[str, Any]], None]] = {
    "notify": _RuleChecks.notify,
    "discount": _RuleChecks.discount,
    "apply_coupon": _RuleChecks.apply_coupon,
    "grant_credit": _RuleChecks.grant_credit,
    "deny": _RuleChecks.deny,
    "set_dunning_state": _RuleChecks.set_dunning_state,
    "retry_payment": _RuleChecks.retry_payment,
}


def ruleset_from_document(doc: Document, refs: References | None = None) -> Ruleset:
    """The typed ruleset, or DocumentError listing every problem."""
    ruleset, found = ruleset_as_far_as_it_goes(doc, refs)
    if found or ruleset is None:
        raise DocumentError(found)
    return ruleset


def load_ruleset(path: str | Path, refs: References | None = None) -> Ruleset:
    return ruleset_from_document(load_yaml_file(path), refs)


def load_ruleset_text(text: str, file: str = "<ruleset>", refs: References | None = None) -> Ruleset:
    return ruleset_from_document(load_yaml_text(text, file), refs)
