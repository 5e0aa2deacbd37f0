"""The condition language of FORMATS §2: parsing into a small tree, normalising context values,
and the pure-Python reference evaluator.

The durable_rules compiler (compiler.py) produces the same answers; a Hypothesis differential
test holds the two together. Semantics, in one place:

* A value is *missing* when the path does not lead anywhere or leads to null.
* Values are typed: number (int, Decimal; never bool), string (dates and datetimes become ISO
  strings, datetimes in UTC with a `Z`), boolean, list (of scalars), object.
  A test only holds between values of the same type: `{x: 5}` does not match the string "5",
  `{x: {gt: "2026-01-01"}}` compares strings (ISO dates sort as text), `{x: {gt: 5}}` numbers.
* `eq null` is `exists: false`; `exists: true` holds for any non-null value.
* `ne`, `not_in` and `not` are exact negations: they hold when the value is missing.
* `in` holds when any listed value is `eq`; `contains` holds when the value is a list holding an
  element `eq` to the given scalar; `matches` holds when the whole string matches the pattern.
* Numbers are compared at double precision (15 significant digits), as durable_rules does.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from functools import partial, singledispatch
from typing import Any, Union

import re2

# Where a path may start. Anything else is a mistake (a typo, or a field the engine never sets).
ROOTS: tuple[str, ...] = (
    "event",
    "customer",
    "subscription",
    "invoice",
    "account",
    "usage",
    "payment",
    "plan",
    "price",
    "period",
    "coupon",
    "feature",
    "quantity",
    "reason",
    "allowed",
    "limit",
    "used",
    "remaining",
    "offer",
    "notification",
    "data",
)
COMPARISONS = ("gt", "gte", "lt", "lte")
OPERATORS = ("eq", "ne", *COMPARISONS, "in", "not_in", "exists", "matches", "contains")
PATH_RE = re.compile(r"^[a-z_][a-z0-9_]*(\.[A-Za-z0-9_-]+)*$")


class Missing(Enum):
    MISSING = "missing"


MISSING = Missing.MISSING

Scalar = Union[str, Decimal, bool, None]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True, slots=True)
class Test:
    """One leaf: `path op value`. `value` is normalised: Decimal for numbers."""

    path: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Union[Test, All, AnyOf, Not]  # noqa: UP007


class ConditionError(ValueError):
    """A condition the schema let through but that cannot be evaluated; `where` is the
    relative JSON path of the offending part."""

    def __init__(self, where: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def literal(value: Any) -> Scalar:
    """A literal from a rule: numbers become Decimal (floats through their shortest repr)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value
    raise ValueError(f"{value!r} is not a scalar (string, number, boolean or null)")


def parse_condition(data: Any, where: tuple[str | int, ...] = ()) -> Node:
    """Parse a (schema-valid) condition mapping. Raises ConditionError on what the schema
    cannot see: unknown path roots, bad regexes, numbers out of range."""
    if not isinstance(data, Mapping) or not data:
        raise ConditionError(where, "a condition is a non-empty mapping")
    parts: list[Node] = []
    for key, value in data.items():
        here = (*where, key)
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise ConditionError(here, f"{key} takes a non-empty list of conditions")
            items = tuple(parse_condition(v, (*here, i)) for i, v in enumerate(value))
            parts.append(All(items) if key == "all" else AnyOf(items))
        elif key == "not":
            parts.append(Not(parse_condition(value, here)))
        else:
            check_path(key, here)
            parts.extend(_parse_tests(key, value, here))
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def check_path(path: str, where: tuple[str | int, ...] = ()) -> None:
    if not PATH_RE.match(path):
        raise ConditionError(where, f"{path!r} is not a dotted path such as customer.segment")
    root = path.split(".", 1)[0]
    if root not in ROOTS:
        raise ConditionError(where, f"unknown context path {path!r}: a path starts with one of {', '.join(ROOTS)}")


Where = tuple[str | int, ...]


def _parse_tests(path: str, value: Any, where: Where) -> Iterator[Test]:
    if not isinstance(value, Mapping):
        yield Test(path, "eq", _lit(value, where))
        return
    if not value:
        raise ConditionError(where, "an empty test; write e.g. {gte: 10}")
    for op, arg in value.items():
        here = (*where, op)
        parse_argument = _ARGUMENTS.get(op)
        if parse_argument is None:
            raise ConditionError(here, f"unknown test {op!r}; tests are {', '.join(OPERATORS)}")
        yield Test(path, op, parse_argument(op, arg, here))


def _scalar_argument(op: str, arg: Any, here: Where) -> Scalar:
    return _lit(arg, here)


def _list_argument(op: str, arg: Any, here: Where) -> tuple[Scalar, ...]:
    if not isinstance(arg, list) or not arg:
        raise ConditionError(here, f"{op} takes a non-empty list of values")
    return tuple(_lit(v, (*here, i)) for i, v in enumerate(arg))


def _exists_argument(op: str, arg: Any, here: Where) -> bool:
    if not isinstance(arg, bool):
        raise ConditionError(here, "exists takes true or false")
    return arg


def _regex_argument(op: str, arg: Any, here: Where) -> str:
    if not isinstance(arg, str):
        raise ConditionError(here, "matches takes a regular expression (a string)")
    check_regex(arg, here)
    return arg


def _ordered_argument(op: str, arg: Any, here: Where) -> Scalar:
    v = _lit(arg, here)
    if v is None or isinstance(v, bool):
        raise ConditionError(here, f"{op} compares numbers or strings (e.g. ISO dates)")
    return v


def _element_argument(op: str, arg: Any, here: Where) -> Scalar:
    v = _lit(arg, here)
    if v is None:
        raise ConditionError(here, "contains takes a value, not null")
    return v


# How each operator's argument is checked and normalised (the order of OPERATORS).
_ARGUMENTS: dict[str, Callable[[str, Any, Where], Any]] = {
    "eq": _scalar_argument,
    "ne": _scalar_argument,
    **dict.fromkeys(COMPARISONS, _ordered_argument),
    "in": _list_argument,
    "not_in": _list_argument,
    "exists": _exists_argument,
    "matches": _regex_argument,
    "contains": _element_argument,
}


_MAX_NUMBER = Decimal("1e15")
_MIN_FRACTION = Decimal("1e-6")


def _lit(value: Any, where: tuple[str | int, ...]) -> Scalar:
    if isinstance(value, list | dict):
        raise ConditionError(where, f"{value!r} is not a scalar (string, number, boolean or null)")
    try:
        v = literal(value)
    except ValueError as exc:
        raise ConditionError(where, str(exc)) from None
    if isinstance(v, Decimal) and v != 0:
        # durable_rules reads plain decimals only; and money needs no more than this.
        if abs(v) >= _MAX_NUMBER or abs(v) < _MIN_FRACTION:
            raise ConditionError(
                where, f"{value} is out of range: numbers in conditions lie between 0.000001 and 1,000,000,000,000,000"
            )
    return v


# Every `matches` runs on RE2 (linear in the value's length, whatever the pattern: no rule can
# take the engine down with a backtracking pattern such as (a|aa)+b), in both evaluators; the
# durable_rules engine only ever sees the precomputed bit. The dialect stays the small one
# docs/rules.md documents (what durable_rules' own DFA reads), so a pattern means one thing
# everywhere; checked here so the author gets a clear message at validation.
_REGEX_UNSUPPORTED = (
    ("\\", "backslash escapes (\\d, \\w, \\.) are not supported: write [0-9], [a-z], [.]"),
    ("(?", "(?...) groups are not supported"),
    ("*?", "lazy quantifiers are not supported (a whole-string match does not need them)"),
    ("+?", "lazy quantifiers are not supported (a whole-string match does not need them)"),
    ("??", "lazy quantifiers are not supported"),
    ("[]", "an empty or ']'-leading character class"),
    ("[^]", "an empty or ']'-leading character class"),
)


def check_regex(pattern: str, where: tuple[str | int, ...] = ()) -> None:
    if pattern == "":
        raise ConditionError(where, "an empty pattern; to test presence use exists: true")
    for bad, why in _REGEX_UNSUPPORTED:
        if bad in pattern:
            raise ConditionError(where, f"regex {pattern!r}: {why}")
    outside = re.sub(r"\[[^\]]*\]", "", pattern)
    if "^" in outside or "$" in outside:
        raise ConditionError(
            where,
            f"regex {pattern!r}: ^ and $ are not needed (the whole value must match); "
            "write [$] or [\\^] for the characters themselves",
        )
    if len(pattern) > _MAX_PATTERN:
        raise ConditionError(where, f"regex of {len(pattern)} characters: at most {_MAX_PATTERN}")
    try:
        _regex(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ConditionError(
            where, f"regex {pattern!r} does not compile in RE2, the linear-time engine every matches runs on: {reason}"
        ) from None


_MAX_PATTERN = 1000


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.dot_nl = True  # `.` matches any character, newlines included (re.DOTALL before)
    options.never_capture = True  # a whole-value yes/no needs no groups, and runs faster
    options.log_errors = False  # a refused pattern is reported to its author, not to stderr
    options.max_mem = 1 << 20  # a pattern whose automaton needs more is refused at validation
    return options


# ----------------------------------------------------------------------------- values


@singledispatch
def normalize(value: Any) -> Any:
    """A context value in the language's types: MISSING, Decimal, str, bool, list, dict.
    Dispatched on the value's type (the most specific registered class of its MRO)."""
    quantity = getattr(value, "quantity", None)  # e.g. pricing's MetricUsage
    if isinstance(quantity, Decimal | int):
        return normalize(quantity)
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)


@normalize.register(type(None))
@normalize.register(Missing)
def _missing(value: Missing | None) -> Missing:
    return MISSING


@normalize.register(bool)
@normalize.register(str)
@normalize.register(Mapping)
def _as_is(value: bool | str | Mapping[str, Any]) -> bool | str | Mapping[str, Any]:
    return value


@normalize.register(int)
def _integer(value: int) -> Decimal:
    return Decimal(value)


@normalize.register(Decimal)
def _decimal(value: Decimal) -> Decimal | Missing:
    return value if value.is_finite() else MISSING


@normalize.register(float)
def _float(value: float) -> Decimal | Missing:
    return Decimal(repr(value)) if math.isfinite(value) else MISSING


@normalize.register(datetime)
def _datetime(value: datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat()
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@normalize.register(date)
def _date(value: date) -> str:
    return value.isoformat()


@normalize.register(Enum)
def _enum(value: Enum) -> Any:
    return normalize(value.value)


@normalize.register(list)
@normalize.register(tuple)
@normalize.register(set)
@normalize.register(frozenset)
def _collection(value: list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any]) -> list[Any]:
    items = [normalize(v) for v in value]
    return [v for v in items if v is not MISSING and not isinstance(v, list | dict)]


def lookup(context: Mapping[str, Any], path: str) -> Any:
    """The normalised value at a dotted path, or MISSING."""
    node: Any = context
    for part in path.split("."):
        if isinstance(node, Mapping):
            if part not in node:
                return MISSING
            node = node[part]
        else:
            node = getattr(node, part, MISSING) if not isinstance(node, str | int | Decimal) else MISSING
        if node is None or node is MISSING:
            return MISSING
    return normalize(node)


def kind(value: Any) -> str:
    """n (number), s (string), b (boolean), a (list), o (object) or m (missing)."""
    if value is MISSING:
        return "m"
    if isinstance(value, bool):
        return "b"
    if isinstance(value, Decimal):
        return "n"
    if isinstance(value, str):
        return "s"
    if isinstance(value, list):
        return "a"
    return "o"


def _same(value: Any, lit: Scalar) -> bool:
    if lit is None:
        return value is MISSING
    lk = kind(lit)
    return kind(value) == lk and (float(value) == float(lit) if lk == "n" else value == lit)


def _compare(order: Callable[[Any, Any], Any], value: Any, lit: Scalar) -> bool:
    lk = kind(lit)
    if kind(value) != lk:
        return False
    if lk == "n":
        return bool(order(float(value), float(lit)))  # type: ignore[arg-type]
    return bool(order(value, lit))


_REGEX_CACHE: dict[str, Any] = {}


def _regex(pattern: str) -> Any:
    """The RE2 program for a pattern (raises re2.error for one RE2 refuses). Cached: patterns
    come from installed rulesets, a bounded set."""
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        if len(_REGEX_CACHE) > 4096:
            _REGEX_CACHE.clear()
        compiled = _REGEX_CACHE[pattern] = re2.compile(pattern, options=_re2_options())
    return compiled


def test_value(value: Any, op: str, arg: Any) -> bool:
    """Does a normalised value pass one test?"""
    passes = _PASSES.get(op)
    if passes is None:
        raise ValueError(f"unknown test {op!r}")
    return passes(value, arg)


def _differs(value: Any, lit: Scalar) -> bool:
    return not _same(value, lit)


def _one_of(value: Any, lits: tuple[Scalar, ...]) -> bool:
    return any(_same(value, a) for a in lits)


def _none_of(value: Any, lits: tuple[Scalar, ...]) -> bool:
    return not _one_of(value, lits)


def _exists(value: Any, wanted: bool) -> bool:
    return (value is not MISSING) == wanted


def _matches(value: Any, pattern: str) -> bool:
    return isinstance(value, str) and _regex(pattern).fullmatch(value) is not None


def _contains(value: Any, lit: Scalar) -> bool:
    return isinstance(value, list) and any(_same(v, lit) for v in value)


_PASSES: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _same,
    "ne": _differs,
    "gt": partial(_compare, operator.gt),
    "gte": partial(_compare, operator.ge),
    "lt": partial(_compare, operator.lt),
    "lte": partial(_compare, operator.le),
    "in": _one_of,
    "not_in": _none_of,
    "exists": _exists,
    "matches": _matches,
    "contains": _contains,
}


def evaluate(node: Node, context: Mapping[str, Any]) -> bool:
    """The reference evaluator."""
    if isinstance(node, Test):
        return test_value(lookup(context, node.path), node.op, node.value)
    if isinstance(node, All):
        return all(evaluate(n, context) for n in node.items)
    if isinstance(node, AnyOf):
        return any(evaluate(n, context) for n in node.items)
    return not evaluate(node.item, context)


def paths(node: Node) -> list[str]:
    """Every path a condition reads, in first-use order."""
    return list(dict.fromkeys(t.path for t in tests(node)))


def tests(node: Node) -> Iterator[Test]:
    if isinstance(node, Test):
        yield node
    elif isinstance(node, All | AnyOf):
        for item in node.items:
            yield from tests(item)
    else:
        yield from tests(node.item)


def jsonable(value: Any) -> Any:
    """A normalised value as plain JSON (numbers as decimal strings, exact)."""
    if value is MISSING:
        return None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(normalize(v)) for k, v in value.items()}
    return value
