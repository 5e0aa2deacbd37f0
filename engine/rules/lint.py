"""`billing lint rules/ catalogs/`: everything validation finds, plus mistakes that are legal
but cannot be meant: duplicate ids, references to unknown things, conditions that can never
hold, allow rules shadowed by an earlier deny, schedules on rules that also have `on`."""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.catalog import Catalog, catalog_from_document, is_catalog_document
from engine.documents import Document, DocumentError, Problem, load_yaml_file
from engine.rules.conditions import All, AnyOf, Node, Not, Test, kind, tests
from engine.rules.loader import References, ruleset_as_far_as_it_goes
from engine.rules.model import Rule, Ruleset

_NUMERIC = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def expand(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(x for x in p.iterdir() if x.suffix in (".yaml", ".yml", ".json") and x.is_file()))
        else:
            out.append(p)
    return out


def lint_paths(paths: Iterable[str | Path], templates: str | Path | None = "templates") -> list[Problem]:
    """Lint catalogs and rulesets together (rules are checked against every catalog given).
    `templates`: the templates directory (unchecked when it does not exist or is None)."""
    problems: list[Problem] = []
    catalogs: list[Catalog] = []
    rulesets: list[Document] = []
    for path in expand(paths):
        problems.extend(_sort_document(path, catalogs, rulesets))
    tdir = Path(templates) if templates is not None else None
    refs = References.from_catalogs(catalogs, tdir if tdir is not None and tdir.is_dir() else None)
    return problems + _rulesets_problems(rulesets, refs, checked=bool(catalogs))


def _sort_document(path: Path, catalogs: list[Catalog], rulesets: list[Document]) -> list[Problem]:
    """Load one file into `catalogs` or `rulesets`; returns what stopped it."""
    try:
        doc = load_yaml_file(path)
        if is_catalog_document(doc):
            catalogs.append(catalog_from_document(doc))
            return []
    except DocumentError as exc:
        return list(exc.problems)
    if isinstance(doc.data, dict) and "ruleset" in doc.data:
        rulesets.append(doc)
        return []
    return [doc.problem([], "neither a catalog (top-level 'catalog:') nor a ruleset (top-level 'ruleset:')")]


def _rulesets_problems(rulesets: list[Document], refs: References, *, checked: bool) -> list[Problem]:
    """Each ruleset as far as it goes, its lint, and names used twice. `checked`: a catalog
    was given to check the references against."""
    problems: list[Problem] = []
    names: dict[str, str] = {}
    for doc in rulesets:
        ruleset, found = ruleset_as_far_as_it_goes(doc, refs)
        if not checked and not found:
            found.append(
                doc.problem(
                    ["ruleset"],
                    "no catalog given: plans, prices, features, metrics and "
                    "coupons were not checked (lint rules/ catalogs/)",
                    "warning",
                )
            )
        problems.extend(found)
        if ruleset is None:  # its shape is wrong: there are no rules to analyse
            continue
        if ruleset.name in names:
            problems.append(
                doc.problem(["ruleset"], f"duplicate ruleset name {ruleset.name!r} (also {names[ruleset.name]})")
            )
        names.setdefault(ruleset.name, doc.file)
        problems.extend(lint_ruleset(ruleset, doc))
    return problems


def lint_ruleset(ruleset: Ruleset, doc: Document) -> list[Problem]:
    """Conditions that can never hold, text compared as numbers, allows shadowed by a deny. A
    rule whose `when` did not parse (validation reported it) is left out: read as "always",
    it would shadow the rules after it."""
    raw_rules = doc.data["rules"]  # `ruleset` was built from this mapping (ruleset_as_far_as_it_goes)
    unparsed = {r.index for r in ruleset.rules if r.when is None and "when" in raw_rules[r.index]}
    parsed = [r for r in ruleset.rules if r.index not in unparsed]
    out = [p for rule in parsed for p in _condition_problems(rule, doc)]
    return out + _shadowed_allows(parsed, doc)


def _condition_problems(rule: Rule, doc: Document) -> list[Problem]:
    """A `when` that can never hold, and text compared as a number."""
    if rule.when is None:
        return []
    where: list[str | int] = ["rules", rule.index, "when"]
    out = [] if satisfiable(rule.when) else [doc.problem(where, "this condition can never hold")]
    for t in tests(rule.when):
        if t.op in ("gt", "gte", "lt", "lte") and isinstance(t.value, str) and _NUMERIC.match(t.value):
            out.append(
                doc.problem(
                    where,
                    f"{t.path} {t.op} {t.value!r} compares text; write the number unquoted to compare numbers",
                    "warning",
                )
            )
    return out


def _shadowed_allows(rules: list[Rule], doc: Document) -> list[Problem]:
    """Enabled rules that allow and never take effect: an earlier rule denies whenever they allow."""
    out: list[Problem] = []
    ordered = sorted((r for r in rules if r.enabled), key=lambda r: (r.priority, r.index))
    for i, rule in enumerate(ordered):
        names = {a.name for a in rule.then}
        if "allow" not in names or "deny" in names:
            continue
        earlier = next((e for e in ordered[:i] if _shadows(e, rule)), None)
        if earlier is not None:
            out.append(
                doc.problem(
                    ["rules", rule.index],
                    f"rule {rule.id!r} never takes effect: the earlier rule "
                    f"{earlier.id!r} denies whenever it allows, and deny wins",
                )
            )
    return out


def _conjuncts(node: Node | None) -> list[Node]:
    if node is None:
        return []
    if isinstance(node, All):
        return [x for n in node.items for x in _conjuncts(n)]
    return [node]


def _shadows(a: Rule, b: Rule) -> bool:
    if "deny" not in {x.name for x in a.then}:
        return False
    if not set(b.on) <= set(a.on) or (b.schedule and b.schedule != a.schedule):
        return False
    if (a.valid_from and (not b.valid_from or b.valid_from < a.valid_from)) or (
        a.valid_until and (not b.valid_until or b.valid_until > a.valid_until)
    ):
        return False
    return all(c in _conjuncts(b.when) for c in _conjuncts(a.when))


# --------------------------------------------------------------------- satisfiability

_MAX_TERMS = 256


def _dnf(node: Node) -> list[list[Test]] | None:
    """Disjunctive normal form of the positive part; None when too big or under a `not`
    (then we do not claim anything)."""
    if isinstance(node, Test):
        return [[node]]
    if isinstance(node, Not):
        return None
    if isinstance(node, AnyOf):
        out: list[list[Test]] = []
        for n in node.items:
            d = _dnf(n)
            if d is None:
                return None
            out.extend(d)
        return out if len(out) <= _MAX_TERMS else None
    terms: list[list[Test]] = [[]]
    for n in node.items:
        d = _dnf(n)
        if d is None:
            return None
        terms = [a + b for a, b in itertools.product(terms, d)]
        if len(terms) > _MAX_TERMS:
            return None
    return terms


def satisfiable(node: Node) -> bool:
    """False only when the condition provably never holds."""
    terms = _dnf(node)
    if terms is None:
        return True
    return any(_term_ok(t) for t in terms)


def _term_ok(term: list[Test]) -> bool:
    by_path: dict[str, list[Test]] = {}
    for t in term:
        by_path.setdefault(t.path, []).append(t)
    return all(_path_ok(ts) for ts in by_path.values())


def _path_ok(ts: list[Test]) -> bool:
    """Whether one value at one path can pass every test on it: the field can both exist and
    be missing as asked, the tests agree on its kind, its range is not empty and some pinned
    value survives the exclusions and the range."""
    if _must_exist(ts) and _must_miss(ts):
        return False
    kinds = _value_kinds(ts)
    if len(kinds) > 1:
        return False
    lo, hi = _bound(ts, ("gt", "gte"), _tighter_low), _bound(ts, ("lt", "lte"), _tighter_high)
    if _empty_range(lo, hi):
        return False
    allowed = _pinned(ts)
    if allowed is None:
        return True
    allowed -= _excluded(ts)
    if kinds:
        k = next(iter(kinds))
        allowed = {v for v in allowed if v[0] == k}
    return any(_within(v, lo, hi) for v in allowed)


_NEEDS_VALUE = ("gt", "gte", "lt", "lte", "matches", "contains")


def _needs_field(t: Test) -> bool:
    if t.op in _NEEDS_VALUE:
        return True
    if t.op == "eq":
        return t.value is not None
    if t.op == "exists":
        return bool(t.value)
    if t.op == "in":
        return None not in t.value
    return t.op == "ne" and t.value is None


def _must_exist(ts: list[Test]) -> bool:
    return any(_needs_field(t) for t in ts)


def _must_miss(ts: list[Test]) -> bool:
    return any((t.op == "exists" and not t.value) or (t.op == "eq" and t.value is None) for t in ts)


def _pinned(ts: list[Test]) -> set[Any] | None:
    """The set of allowed values, when some `eq` or `in` test pins it down; None otherwise."""
    allowed: set[Any] | None = None
    for t in ts:
        vals = _pinned_by(t)
        if vals is not None:
            allowed = vals if allowed is None else allowed & vals
    return allowed


def _pinned_by(t: Test) -> set[Any] | None:
    if t.op == "eq" and t.value is not None:
        return {_key(t.value)}
    if t.op == "in":
        return {_key(v) for v in t.value if v is not None}
    return None


def _excluded(ts: list[Test]) -> set[Any]:
    out = {_key(t.value) for t in ts if t.op == "ne" and t.value is not None}
    return out | {_key(v) for t in ts if t.op == "not_in" for v in t.value if v is not None}


_KIND_OF_OP = {"matches": "s", "contains": "a"}


def _value_kinds(ts: list[Test]) -> set[str]:
    """The kinds of value the comparisons imply (number/string/... for a bound, string for
    `matches`, array for `contains`): more than one and no value passes them all."""
    kinds = {kind(t.value) for t in ts if t.op in ("gt", "gte", "lt", "lte")}
    return kinds | {_KIND_OF_OP[t.op] for t in ts if t.op in _KIND_OF_OP}


Bound = tuple[Any, bool]  # (bound, strict)


def _tighter_low(b: Bound, than: Bound) -> bool:
    return b[0] > than[0] or (b[0] == than[0] and b[1])


def _tighter_high(b: Bound, than: Bound) -> bool:
    return b[0] < than[0] or (b[0] == than[0] and b[1])


def _bound(ts: list[Test], ops: tuple[str, str], tighter: Callable[[Bound, Bound], bool]) -> Bound | None:
    """The tightest of the bounds the tests `ops` (the non-strict one second) set."""
    out: Bound | None = None
    for t in ts:
        if t.op in ops:
            b = (t.value, t.op == ops[0])
            if out is None or tighter(b, out):
                out = b
    return out


def _empty_range(lo: Bound | None, hi: Bound | None) -> bool:
    if lo is None or hi is None:
        return False
    return lo[0] > hi[0] or (lo[0] == hi[0] and (lo[1] or hi[1]))


def _key(v: Any) -> tuple[str, Any]:
    return (kind(v), float(v) if isinstance(v, Decimal) else v)


def _within(v: tuple[str, Any], lo: Bound | None, hi: Bound | None) -> bool:
    return _inside(v, lo, operator.lt) and _inside(v, hi, operator.gt)


def _inside(v: tuple[str, Any], bound: Bound | None, beyond: Callable[[Any, Any], bool]) -> bool:
    """A value of the bound's kind, not beyond it, and not on it when the bound is strict."""
    if bound is None:
        return True
    (kv, x), (b, strict) = v, bound
    if kind(b) != kv:
        return False
    bx = float(b) if isinstance(b, Decimal) else b
    return not (beyond(x, bx) or (strict and x == bx))
