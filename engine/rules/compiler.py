"""Compile a ruleset into a durable_rules JSON ruleset, and turn a context into the fact it reads.

The fact is flat: one key per (path, type) the ruleset reads, so durable_rules never has to
guess types (it would happily match the string "5" against the number 5) and every negation
can be written with its `$nex` guard (durable's `$neq` does not hold on a missing field):

    p3n   the number at path 3        p3s   the string       p3b  the boolean as 1/0
    p3e   1 when the path is present  p3a   the list, elements tagged "n:5", "s:x", "b:1"
    p3m2  1 when path 3 fully matches regex 2: every `matches` is computed before posting,
          with RE2 (linear time; durable_rules has no negated regex operator, and its own
          DFA refuses some patterns at install with a bare error code)
    _on   the event type, or _sr the scheduled rule's id; _t the clock's epoch seconds

Each compiled ruleset also has one internal rule, `_prime`, that only the engine's primer fact
fires (see durable_engine).

Every durable rule tests `_on` (or `_sr`) first: durable also posts its own session state
through the rules, and a rule made only of negations would otherwise match it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from engine.rules.conditions import (
    MISSING,
    All,
    Node,
    Not,
    Test,
    _regex,
    kind,
    lookup,
    normalize,
    paths,
)
from engine.rules.model import Rule, Ruleset

PRIMER_RULE = "_prime"
_INVERSE = {"gt": "$lte", "gte": "$lt", "lt": "$gte", "lte": "$gt"}


def number_text(value: Decimal) -> str:
    """A number as durable_rules' JSON reader takes it: plain digits, never an exponent."""
    text = str(value)
    if text.isdigit() and len(text) < 18:  # the common case: a small non-negative integer
        return text
    if value == value.to_integral_value() and abs(value) < Decimal("1e18"):
        return str(int(value))
    short = repr(float(value))
    if "e" in short or "inf" in short or "nan" in short:  # repr(float) writes a lowercase e
        return format(Decimal(short), "f")
    return short


def to_json(obj: Any) -> str:
    """JSON with Decimals written as plain numbers (json.dumps would refuse them)."""
    if isinstance(obj, Decimal):
        return number_text(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, int | str):
        return json.dumps(obj, ensure_ascii=False)
    if isinstance(obj, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{to_json(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(to_json(v) for v in obj) + "]"
    raise TypeError(f"cannot write {obj!r} into a durable ruleset")


def tag(value: Any) -> str:
    """A list element as a typed string: durable compares list items loosely too."""
    k = kind(value)
    if k == "n":
        return "n:" + number_text(value)
    if k == "b":
        return "b:" + bit(value)
    return "s:" + str(value)


def bit(value: bool) -> str:
    return "1" if value else "0"


def tags(values: list[Any]) -> str:
    """A list as the fact carries it: a JSON array of tagged strings."""
    return "[" + ",".join(string_json(tag(v)) for v in values) + "]"


@dataclass
class Slot:
    """A path the ruleset reads and the views of it the fact must carry."""

    index: int
    path: str
    views: set[str]
    regexes: dict[str, int]  # `matches` patterns -> their bit number


_SIMPLE = re.compile(r"^[A-Za-z0-9 _.:@/+-]*$")
_STRINGS: dict[str, str] = {}


def string_json(value: str) -> str:
    """A JSON string literal; the common, repeated short strings are cached."""
    text = _STRINGS.get(value)
    if text is None:
        text = f'"{value}"' if _SIMPLE.match(value) else json.dumps(value, ensure_ascii=False)
        if len(value) <= 64:
            if len(_STRINGS) > 50_000:
                _STRINGS.clear()
            _STRINGS[value] = text
    return text


@dataclass
class CompiledRuleset:
    ruleset: Ruleset
    version: int
    definition: dict[str, Any]  # durable rule name -> {"all": [...], "run": action name}
    text: str  # the JSON handed to durable_rules (without the run names)
    slots: list[Slot]
    rules: list[Rule]  # durable rule "r<i>" is rules[i]; disabled rules are not compiled
    rule_paths: list[list[str]]  # per compiled rule, the paths its condition reads
    scheduled: dict[str, int]  # rule id -> index in rules

    @property
    def name(self) -> str:
        return self.ruleset.name

    @property
    def events(self) -> frozenset[str]:
        return frozenset(e for r in self.rules for e in r.on)

    def __post_init__(self) -> None:
        self._plans = tuple(_SlotPlan.of(s) for s in self.slots)
        index = {s.path: s.index for s in self.slots}
        self.rule_slots: list[tuple[tuple[str, int], ...]] = [
            tuple((p, index[p]) for p in ps) for ps in self.rule_paths
        ]

    def fact(
        self, context: Mapping[str, Any], *, event: str | None, scheduled: str | None, now: datetime
    ) -> tuple[str, dict[str, Any]]:
        """The fact for durable_rules (JSON members without the braces, id and sid: the
        engine adds those), and the normalised input values by path."""
        body, values = self.body(context, fact_head(now, event, scheduled))
        return body, {s.path: values[s.index] for s in self.slots}

    def body(self, context: Mapping[str, Any], head: str) -> tuple[str, list[Any]]:
        """The hot path of `fact`: `head` from fact_head (shared by the rulesets one event
        consults), and the normalised values by slot index (only fired rules' are read)."""
        parts = [head]
        values: list[Any] = []
        add, keep = parts.append, values.append
        for plan in self._plans:
            value = plan.read(context)
            keep(value)
            if value is not MISSING:
                plan.write(value, add)
        return ",".join(parts), values


_KINDS: dict[type, str] = {str: "s", Decimal: "n", bool: "b", list: "a"}
# how each kind of value is written after its member's opening
_RENDER: dict[str, Callable[[Any], str]] = {"s": string_json, "n": number_text, "b": bit, "a": tags}


_HEADS: dict[tuple[int, str | None, str | None], str] = {}


def fact_head(now: datetime, event: str | None, scheduled: str | None) -> str:
    """The members every fact of one evaluation starts with: the clock, the event or rule."""
    key = (int(now.timestamp()), event, scheduled)
    head = _HEADS.get(key)
    if head is None:  # once per second and event
        head = f'"_t":{key[0]}'
        if event is not None:
            head += ',"_on":' + string_json(event)
        if scheduled is not None:
            head += ',"_sr":' + json.dumps(scheduled, ensure_ascii=False)
        if len(_HEADS) > 4096:
            _HEADS.clear()
        _HEADS[key] = head
    return head


@dataclass(frozen=True, slots=True)
class _SlotPlan:
    """A slot made ready for the hot path: its path split once and the fact members it may
    write, pre-rendered (None: the ruleset does not read that view)."""

    path: str
    parts: tuple[str, ...]
    exists: str | None
    views: dict[str, str]  # kind (n, s, b, a) -> the member's opening, for the kinds read
    regexes: tuple[tuple[Any, str], ...]  # (RE2 program, the fact member it sets)

    @classmethod
    def of(cls, slot: Slot) -> _SlotPlan:
        p, v = f'"p{slot.index}', slot.views
        return cls(
            slot.path,
            tuple(slot.path.split(".")),
            p + 'e":1' if "e" in v else None,
            {k: f'{p}{k}":' for k in v if k in _RENDER},
            tuple((_regex(pattern), f'{p}m{bit}":1') for pattern, bit in slot.regexes.items()),
        )

    def write(self, value: Any, add: Callable[[str], None]) -> None:
        """Add the fact members for a present value: its views and the regexes it matches."""
        if self.exists is not None:
            add(self.exists)
        k = _KINDS.get(type(value)) or kind(value)
        opening = self.views.get(k)
        if opening is not None and (value or k != "a"):  # an empty list writes no member
            add(opening + _RENDER[k](value))
        if k == "s":
            for pattern, member in self.regexes:
                if pattern.fullmatch(value) is not None:
                    add(member)

    def read(self, context: Mapping[str, Any]) -> Any:
        """lookup(context, path), with plain dicts and common scalars taken directly."""
        node: Any = context
        for part in self.parts:
            if type(node) is not dict:
                return lookup(context, self.path)
            node = node.get(part)
            if node is None:
                return MISSING
        t = type(node)
        if t is str or t is bool:
            return node
        if t is int:
            return Decimal(node)
        if t is Decimal and node.is_finite():
            return node
        if t is list and all(type(v) is str for v in node):  # e.g. tags
            return list(node)  # a copy: the trace must not change with the caller's list
        return normalize(node)


class _Compiler:
    def __init__(self) -> None:
        self.slots: dict[str, Slot] = {}

    def slot(self, path: str) -> Slot:
        s = self.slots.get(path)
        if s is None:
            s = self.slots[path] = Slot(len(self.slots), path, set(), {})
        return s

    def key(self, path: str, view: str) -> str:
        s = self.slot(path)
        s.views.add(view)
        return f"p{s.index}{view}"

    def node(self, node: Node, neg: bool) -> dict[str, Any]:
        if isinstance(node, Test):
            return self.leaf(node, neg)
        if isinstance(node, Not):
            return self.node(node.item, not neg)
        items = [self.node(n, neg) for n in node.items]
        conj = isinstance(node, All) != neg  # De Morgan
        if len(items) == 1:
            return items[0]
        return {"$and": items} if conj else {"$or": items}

    def eq(self, path: str, lit: Any, neg: bool) -> dict[str, Any]:
        if lit is None:
            e = self.key(path, "e")
            return {"$ex": {e: 1}} if neg else {"$nex": {e: 1}}
        k = kind(lit)
        key = self.key(path, k)
        value: Any = (1 if lit else 0) if k == "b" else lit
        if not neg:
            return {key: value}
        return {"$or": [{"$nex": {key: 1}}, {"$neq": {key: value}}]}

    def leaf(self, t: Test, neg: bool) -> dict[str, Any]:
        compile_test = _TESTS.get(t.op)
        if compile_test is None:
            raise ValueError(f"unknown test {t.op!r}")
        return compile_test(self, t.path, t.value, neg)

    def not_equal(self, path: str, v: Any, neg: bool) -> dict[str, Any]:
        return self.eq(path, v, not neg)

    def one_of(self, path: str, v: Any, neg: bool) -> dict[str, Any]:
        items = [self.eq(path, x, neg) for x in v]
        if len(items) == 1:
            return items[0]
        return {"$and": items} if neg else {"$or": items}

    def none_of(self, path: str, v: Any, neg: bool) -> dict[str, Any]:
        return self.one_of(path, v, not neg)

    def exists(self, path: str, v: Any, neg: bool) -> dict[str, Any]:
        e = self.key(path, "e")
        return {"$ex": {e: 1}} if v != neg else {"$nex": {e: 1}}

    def matches(self, path: str, v: Any, neg: bool) -> dict[str, Any]:
        s = self.slot(path)
        bit = s.regexes.setdefault(v, len(s.regexes))
        return {"$nex" if neg else "$ex": {f"p{s.index}m{bit}": 1}}

    def contains(self, path: str, v: Any, neg: bool) -> dict[str, Any]:
        key = self.key(path, "a")
        if not neg:
            return {"$iany": {key: {"$i": tag(v)}}}
        return {"$or": [{"$nex": {key: 1}}, {"$iall": {key: {"$neq": {"$i": tag(v)}}}}]}


def _compare(op: str, c: _Compiler, path: str, v: Any, neg: bool) -> dict[str, Any]:
    key = c.key(path, kind(v))
    if not neg:
        return {"$" + op: {key: v}}
    return {"$or": [{"$nex": {key: 1}}, {_INVERSE[op]: {key: v}}]}


_TESTS: dict[str, Callable[[_Compiler, str, Any, bool], dict[str, Any]]] = {
    "eq": _Compiler.eq,
    "ne": _Compiler.not_equal,
    "in": _Compiler.one_of,
    "not_in": _Compiler.none_of,
    "exists": _Compiler.exists,
    "matches": _Compiler.matches,
    "contains": _Compiler.contains,
    **{op: partial(_compare, op) for op in _INVERSE},
}


def _conditions(c: _Compiler, rule: Rule) -> list[dict[str, Any]]:
    """A rule's durable conditions: its trigger (event or schedule), window and `when`."""
    if rule.on:
        ons = [{"_on": e} for e in rule.on]
        conj: list[dict[str, Any]] = [ons[0] if len(ons) == 1 else {"$or": ons}]
    else:
        conj = [{"_sr": rule.id}]
    if rule.valid_from is not None:
        conj.append({"$gte": {"_t": int(rule.valid_from.timestamp())}})
    if rule.valid_until is not None:
        conj.append({"$lt": {"_t": int(rule.valid_until.timestamp())}})
    if rule.when is not None:
        conj.append(c.node(rule.when, False))
    return conj


def compile_ruleset(ruleset: Ruleset, version: int = 0) -> CompiledRuleset:
    c = _Compiler()
    definition: dict[str, Any] = {}
    rules: list[Rule] = []
    rule_paths: list[list[str]] = []
    scheduled: dict[str, int] = {}
    for rule in ruleset.rules:
        if not rule.enabled:
            continue
        i = len(rules)
        rules.append(rule)
        if not rule.on:
            scheduled[rule.id] = i
        definition[f"r{i}"] = {"all": [{"m": {"$and": _conditions(c, rule)}}]}
        rule_paths.append(paths(rule.when) if rule.when is not None else [])
        for path in rule_paths[-1]:
            c.slot(path)  # every path a rule reads has a value to show in its trace
    # The primer: no fact of ours has `_prime`; the engine fires it once per session so that
    # the session can later be deleted safely (see the durable_engine docstring).
    text = to_json({**definition, PRIMER_RULE: {"all": [{"m": {"_prime": 1}}]}})
    for i, rule in enumerate(rules):
        definition[f"r{i}"]["run"] = f"{ruleset.name}/{rule.id}"
    return CompiledRuleset(ruleset, version, definition, text, list(c.slots.values()), rules, rule_paths, scheduled)
