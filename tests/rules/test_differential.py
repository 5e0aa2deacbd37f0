"""durable_rules and the pure-Python reference give the same matches for generated conditions
and contexts (every operator, nesting, negation, missing values, mixed types)."""

from __future__ import annotations

import os
from collections import OrderedDict
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.rules import DurableEngine, compile_ruleset, reference_fired
from engine.rules.conditions import lookup, parse_condition
from engine.rules.model import ActionSpec, Rule, Ruleset

PATHS = ["customer.segment", "customer.n", "invoice.total", "customer.tags", "account.state", "usage.api"]
NOW = datetime(2026, 6, 1, tzinfo=UTC)

numbers = st.one_of(
    st.integers(-5, 5),
    st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=2, allow_nan=False,
                allow_infinity=False),
)
strings = st.sampled_from(["", "a", "b", "ab", "edu", "abba", "x.y", "2026-01-01", "2026-12-31", "5", "é"])
scalars = st.one_of(numbers, strings, st.booleans())
literals = st.one_of(numbers.filter(lambda d: d == 0 or abs(Decimal(d)) >= Decimal("0.01")), strings, st.booleans())
regexes = st.sampled_from(["a*", "ab?", "[a-c]+", "(a|b)+", "a.*", ".*b", "[^a]*", "a{2}", "x[.]y", "20[0-9][0-9]-.*", "é|e"])

def _test() -> st.SearchStrategy[Any]:
    comparable = st.one_of(numbers.filter(lambda d: d == 0 or abs(Decimal(d)) >= Decimal("0.01")),
                           strings.filter(bool))
    return st.one_of(
        literals,
        st.none(),
        st.fixed_dictionaries({"eq": st.one_of(literals, st.none())}),
        st.fixed_dictionaries({"ne": st.one_of(literals, st.none())}),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["gt", "gte", "lt", "lte"]), comparable),
        st.builds(lambda vs: {"in": vs}, st.lists(literals, min_size=1, max_size=3)),
        st.builds(lambda vs: {"not_in": vs}, st.lists(literals, min_size=1, max_size=3)),
        st.builds(lambda b: {"exists": b}, st.booleans()),
        st.builds(lambda r: {"matches": r}, regexes),
        st.builds(lambda v: {"contains": v}, literals),
        st.builds(lambda a, b: {"gte": a, "lt": b}, numbers, numbers),
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v) if v != v.to_integral_value() else int(v)
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


leaf = st.builds(lambda p, t: {p: _jsonable(t)}, st.sampled_from(PATHS), _test())
conditions = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=6,
)
values = st.one_of(st.none(), scalars, st.lists(scalars, max_size=3), st.just({"nested": 1}))
contexts = st.builds(
    lambda seg, n, total, tags, state, api: {
        "customer": {"segment": seg, "n": n, "tags": tags},
        "invoice": {"total": total},
        "account": {"state": state},
        "usage": {"api": api},
    },
    values, values, values, values, values, values,
)


@settings(max_examples=int(os.environ.get("RULES_DIFF_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(conds=st.lists(conditions, min_size=1, max_size=6), ctxs=st.lists(contexts, min_size=1, max_size=8))
def test_durable_and_reference_agree(durable: DurableEngine, conds: list[dict[str, Any]],
                                     ctxs: list[dict[str, Any]]) -> None:
    rules = tuple(
        Rule(id=f"r{i}", index=i, then=(ActionSpec("allow", {}),), on=("t.e",), when=parse_condition(c))
        for i, c in enumerate(conds)
    )
    compiled = compile_ruleset(Ruleset("diff", rules), 1)
    handle = durable.register(compiled)
    try:
        for ctx in ctxs:
            body, _ = compiled.fact(ctx, event="t.e", scheduled=None, now=NOW)
            got = sorted(durable.evaluate(handle, body))
            want = reference_fired(compiled, ctx, event="t.e", scheduled=None, now=NOW)
            assert got == want, (conds, ctx)
    finally:
        durable.retire(handle)  # hundreds of examples: give each one's memory back


class _Shape(Enum):
    ROUND = "round"


class _Obj:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


ODD_VALUES = [5, -3, 2.5, float("nan"), Decimal("7.10"), Decimal("Infinity"), True, False, "edu", "",
              datetime(2026, 1, 2, 3, 4, tzinfo=UTC), date(2026, 5, 6), _Shape.ROUND, None,
              ["partner", "x"], ("a", 1, None, True, 2.0), [], {"nested": 1}, 10**20]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_the_fast_fact_reads_every_value_as_lookup_normalises_it(value: Any) -> None:
    """The hot path's reader is a shortcut of conditions.lookup: same values, any container."""
    conds = [{p: {"exists": True}} for p in PATHS] + [{"customer.n": {"gt": 1}}, {"customer.segment": "a"},
                                                      {"customer.tags": {"contains": "x"}}]
    rules = tuple(Rule(id=f"r{i}", index=i, then=(ActionSpec("allow", {}),), on=("t.e",), when=parse_condition(c))
                  for i, c in enumerate(conds))
    compiled = compile_ruleset(Ruleset("reader", rules), 1)
    as_dict = {"customer": {"segment": value, "n": value, "tags": value}, "invoice": {"total": value},
               "account": {"state": value}, "usage": {"api": value}}
    shapes = [as_dict, MappingProxyType(as_dict), OrderedDict(as_dict),
              {"customer": _Obj(segment=value, n=value, tags=value), "invoice": {"total": value},
               "account": {"state": value}, "usage": MappingProxyType({"api": value})}]
    want = [lookup(as_dict, s.path) for s in compiled.slots]
    bodies = set()
    for ctx in shapes:
        body, values = compiled.body(ctx, '"_on":"t.e"')
        assert repr(values) == repr(want)
        bodies.add(body)
    assert len(bodies) == 1
