"""The editor's forms: each edit loads the draft's YAML, changes one thing and writes YAML back,
keeping the author's comments and key order (ruamel.yaml round trip). The text stays the
source of truth: a form is a shortcut for typing."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from engine.documents import DocumentError, load_yaml_text


class EditError(ValueError):
    """A form edit that cannot apply (the message names the field)."""


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def load(text: str) -> Any:
    try:
        # The engine's one YAML loader decides first (size, depth, alias expansion, duplicate
        # keys): ruamel only round-trips a text that loader accepted.
        load_yaml_text(text, "draft")
    except DocumentError as exc:
        raise EditError(
            f"the draft does not parse, fix the text first: line {exc.problems[0].line}: {exc.problems[0].message}"
        ) from None
    try:
        data = _yaml().load(text)
    except YAMLError as exc:
        raise EditError(f"the draft does not parse, fix the text first: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise EditError("the draft is not a mapping: fix the text first")
    return data


def dump(data: Any) -> str:
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


def money(value: Any, field: str) -> DoubleQuotedScalarString:
    """An amount as the catalog format wants it: a quoted decimal string."""
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise EditError(f"{field}: {value!r} is not an amount") from None
    if not d.is_finite() or d < 0:
        raise EditError(f"{field}: an amount, 0 or more")
    return DoubleQuotedScalarString(format(d, "f"))


# The catalog schema's identifier (plans, prices, features, metrics).
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def flow(d: Mapping[str, Any]) -> CommentedMap:
    """A mapping written on one line, as the shipped catalogs write prices and tiers."""
    m = CommentedMap(d)
    m.fa.set_flow_style()
    return m


_flow = flow


def flow_seq(items: Sequence[Any]) -> CommentedSeq:
    seq = CommentedSeq(list(items))
    seq.fa.set_flow_style()
    return seq


def plan_of(data: Any, plan_id: str) -> Any:
    return _plan(data, plan_id)


def _plan(data: Any, plan_id: str) -> Any:
    plans = data.get("plans")
    if not isinstance(plans, dict) or plan_id not in plans:
        raise EditError(f"plans.{plan_id}: no such plan")
    return plans[plan_id]


def _price(data: Any, plan_id: str, price_id: str) -> Any:
    for price in _plan(data, plan_id).get("prices") or []:
        if isinstance(price, dict) and price.get("id") == price_id:
            return price
    raise EditError(f"plans.{plan_id}.prices: no price {price_id!r}")


MONEY_FIELDS = ("amount", "unit_amount", "fixed_amount", "free_amount", "min_per_transaction", "max_per_transaction")


def set_price_field(text: str, plan_id: str, price_id: str, field: str, value: Any) -> str:
    """Change one field of a price (an amount, a rate, a package size)."""
    data = load(text)
    price = _price(data, plan_id, price_id)
    if field in MONEY_FIELDS or field == "rate":
        price[field] = money(value, field)
    elif field in ("package_size", "free_units"):
        try:
            price[field] = int(str(value))
        except ValueError:
            raise EditError(f"{field}: a whole number") from None
    else:
        raise EditError(f"{field}: the form changes {', '.join((*MONEY_FIELDS, 'rate', 'package_size', 'free_units'))}")
    return dump(data)


def get_tiers(text: str, plan_id: str, price_id: str) -> list[dict[str, Any]]:
    data = load(text)
    price = _price(data, plan_id, price_id)
    tiers = price.get("tiers")
    if not isinstance(tiers, list):
        raise EditError(f"plans.{plan_id}.prices.{price_id}: has no tiers")
    return [
        {
            "up_to": None if t.get("up_to") is None else str(t.get("up_to")),
            "unit_amount": str(t.get("unit_amount", "")) if t.get("unit_amount") is not None else "",
            "flat_amount": str(t.get("flat_amount", "")) if t.get("flat_amount") is not None else "",
            "rate": str(t.get("rate", "")) if t.get("rate") is not None else "",
        }
        for t in tiers
        if isinstance(t, dict)
    ]


def _blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and v != v:  # NaN from an emptied table cell
        return True
    return str(v).strip() in ("", "None", "nan", "null")


def set_tiers(text: str, plan_id: str, price_id: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Replace a tiered price's tiers with the rows of the editor's table."""
    data = load(text)
    price = _price(data, plan_id, price_id)
    if "tiers" not in price:
        raise EditError(f"plans.{plan_id}.prices.{price_id}: has no tiers")
    # A percentage tier has a rate where another has a unit amount.
    amounts = ("rate" if price.get("model") == "graduated_percentage" else "unit_amount", "flat_amount")
    tiers = CommentedSeq()
    for i, row in enumerate(rows, 1):
        if all(_blank(row.get(k)) for k in ("up_to", "unit_amount", "flat_amount", "rate")):
            continue
        t: dict[str, Any] = {}
        up = row.get("up_to")
        if _blank(up):
            t["up_to"] = None
        else:
            try:
                t["up_to"] = int(Decimal(str(up).strip()))
            except (InvalidOperation, ValueError):
                raise EditError(
                    f"tier {i}: up_to {up!r} is not a whole number (leave it empty for the last tier)"
                ) from None
        for key in amounts:
            if not _blank(row.get(key)):
                t[key] = money(row[key], f"tier {i}: {key}")
        tiers.append(_flow(t))
    if not tiers:
        raise EditError("tiers: keep at least one tier")
    price["tiers"] = tiers
    return dump(data)


def add_plan(text: str, plan_id: str, name: str, interval: str = "month", flat_amount: Any = None) -> str:
    data = load(text)
    plans = data.setdefault("plans", CommentedMap())
    if not plan_id or not str(plan_id).strip():
        raise EditError("id: required")
    plan_id = str(plan_id).strip()
    if plan_id in plans:
        raise EditError(f"plans.{plan_id}: already exists")
    plan = CommentedMap()
    plan["name"] = name or plan_id
    plan["interval"] = interval
    prices = CommentedSeq()
    if not _blank(flat_amount):
        prices.append(_flow({"id": "base", "model": "flat", "amount": money(flat_amount, "amount")}))
    plan["prices"] = prices
    if not prices:
        prices.fa.set_flow_style()
    plans[plan_id] = plan
    return dump(data)


def percentage(d: Decimal) -> int | float:
    """A percentage as the catalog writes it: a number (FORMATS §1: percent_off: 20), never money."""
    return int(d) if d == d.to_integral_value() else float(d)


def add_coupon(
    text: str,
    code: str,
    *,
    percent_off: Any = None,
    amount_off: Any = None,
    duration: str = "once",
    periods: int | None = None,
    applies_to: Sequence[str] = (),
) -> str:
    data = load(text)
    code = (code or "").strip()
    if not code:
        raise EditError("code: required")
    coupons = data.get("coupons")
    if coupons is None:
        coupons = data["coupons"] = CommentedMap()
    if code in coupons:
        raise EditError(f"coupons.{code}: already exists")
    if _blank(percent_off) == _blank(amount_off):
        raise EditError("a coupon takes either percent_off or amount_off")
    c: dict[str, Any] = {}
    if not _blank(percent_off):
        try:
            pct = Decimal(str(percent_off))
        except InvalidOperation:
            raise EditError("percent_off: a number") from None
        c["percent_off"] = percentage(pct)
    else:
        c["amount_off"] = money(amount_off, "amount_off")
    c["duration"] = duration
    if duration == "repeating":
        if not periods or periods < 1:
            raise EditError("periods: a repeating coupon needs how many periods it lasts")
        c["periods"] = int(periods)
    if applies_to:
        seq = CommentedSeq(list(applies_to))
        seq.fa.set_flow_style()
        c["applies_to"] = seq
    coupons[code] = _flow(c)
    return dump(data)


def rules_of(text: str) -> list[dict[str, Any]]:
    data = load(text)
    return [
        {"id": r.get("id"), "enabled": r.get("enabled", True) is not False}
        for r in data.get("rules") or []
        if isinstance(r, dict)
    ]


def toggle_rule(text: str, rule_id: str, enabled: bool) -> str:
    data = load(text)
    for rule in data.get("rules") or []:
        if isinstance(rule, dict) and rule.get("id") == rule_id:
            if enabled:
                rule.pop("enabled", None)  # the default
            else:
                rule["enabled"] = False
            return dump(data)
    raise EditError(f"rules: no rule {rule_id!r}")
