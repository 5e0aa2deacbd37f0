"""Checker findings in words a business user understands: where ("plan pro, price 1, amount")
and what ("must be 0 or more"), instead of JSON paths and JSON Schema's phrasing ("is not
valid under any of the given schemas"). Pure: a Problem in, sentences out."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.documents import Problem

_SECTIONS = {
    "plans": "plan",
    "metrics": "metric",
    "features": "feature",
    "coupons": "coupon",
    "taxes": "tax for",
    "rules": "rule",
}
_ITEMS = {
    "prices": "price",
    "tiers": "tier",
    "then": "action",
    "upgrade_to": "upgrade",
    "applies_to": "plan",
    "channels": "channel",
    "all": "condition",
    "any": "condition",
}

# What each kind of field holds, when the schema could only say "matches none of the forms".
_EXPECTED = {
    "entitlements": "write true or false, a number, or {limit: N, period: month, overage: block}",
    "up_to": "write a whole number, or leave it empty (null) for the last tier",
    "percent_off": "write a percentage from 0 to 100, such as 20",
    "percent": "write a percentage from 0 to 100, such as 20",
    "rate": "write a percentage from 0 to 100, such as 2.9",
    "on": "write an event name such as invoice.paid, or a list of them",
    "limit": "write a whole number, or null for unlimited",
}

_TYPES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "object": "a group of fields",
    "array": "a list",
    "boolean": "true or false",
    "null": "empty",
}


@dataclass(frozen=True)
class PlainProblem:
    line: int
    where: str
    message: str
    severity: str
    path: str


def _position(index: str) -> int:
    """[0] -> 1: positions are counted from 1."""
    return int(index[1:-1]) + 1


def where(path: str) -> str:
    """plans.pro.prices[0].tiers[1].unit_amount -> plan pro › price 1 › tier 2 › unit amount"""
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    out: list[str] = []
    i = 0
    while i < len(parts):
        part, nxt = parts[i], parts[i + 1] if i + 1 < len(parts) else ""  # parts are never empty
        if part in _SECTIONS and nxt:  # a section and the name or position of its entry
            out.append(f"{_SECTIONS[part]} {_position(nxt) if nxt.startswith('[') else nxt}")
        elif nxt.startswith("["):  # a list and the position in it
            out.append(f"{_ITEMS.get(part, part.replace('_', ' '))} {_position(nxt)}")
        else:
            out.append(f"item {_position(part)}" if part.startswith("[") else part.replace("_", " "))
            i += 1
            continue
        i += 2
    return " › ".join(out) or "the whole document"


def _field(path: str) -> str:
    names = re.findall(r"[^.\[\]]+", path)
    return names[-1] if names else ""


def _key_in(path: str) -> str:
    """The section a value sits in (entitlements for plans.pro.entitlements.sso)."""
    names = re.findall(r"[^.\[\]]+", path)
    return names[-2] if len(names) >= 2 else ""


def _one_form_of_many(path: str, m: str) -> bool:
    """An entitlement that is of no type allowed: the checker names the first form it tried
    (boolean), which is wrong for a quantity; say every form instead."""
    return _key_in(path) == "entitlements" and " is not of type " in m


def message(p: Problem) -> str:
    m = p.message
    fld = _field(p.path)
    if (
        "is not valid under any of the given schemas" in m
        or "is valid under each of" in m
        or _one_form_of_many(p.path, m)
    ):
        hint = _EXPECTED.get(fld) or _EXPECTED.get(_key_in(p.path))
        return f"this value has the wrong form: {hint}" if hint else "this value has none of the forms allowed here"
    rules: list[tuple[str, str]] = [
        (r"^(.*) is not of type '(\w+)'$", "{0} should be {t}"),
        (r"^(.*) is less than the minimum of (.+)$", "{0} is too small: the least allowed is {1}"),
        (r"^(.*) is greater than the maximum of (.+)$", "{0} is too large: the most allowed is {1}"),
        (r"^(.*) is too short$", "{0} is empty: give at least one"),
        (r"^(.*) should be non-empty$", "{0} is empty: give at least one"),
        (r"^(.*) has non-unique elements$", "the same entry appears twice"),
        (r"^(.*) is not a '(\w+)'$", "{0} is not a valid {1} (write dates as YYYY-MM-DD)"),
        (r"^'(\w+)' is required$", "'{0}' is missing here"),
        (r"^unknown field '(.+)'$", "'{0}' is not a field here: a typo, or in the wrong place?"),
        (r"^(.*) is not one of (.+)$", "{0} is not allowed here: choose one of {1}"),
        (r"^(.*) does not match the expected form .*$", "{0} is not written as expected: " + _form_hint(fld, m)),
    ]
    for pattern, template in rules:
        found = re.match(pattern, m)
        if found:
            groups = found.groups()
            t = _TYPES.get(groups[-1], groups[-1]) if "{t}" in template else ""
            return template.format(*groups, t=t)
    return m


def _form_hint(fld: str, m: str) -> str:
    if fld in ("amount", "unit_amount", "flat_amount", "fixed_amount", "amount_off", "minimum_amount"):
        return 'an amount such as "49.00"'
    if "[0-9]+(" in m:
        return "a number such as 1000 (digits, maybe a decimal point)"
    if fld == "currency":
        return "a three-letter code such as USD"
    return "ids are lower case letters, digits, '-' or '_', starting with a letter"


def plain(p: Problem) -> PlainProblem:
    return PlainProblem(p.line, where(p.path), message(p), p.severity, p.path)
