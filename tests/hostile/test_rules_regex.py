"""Hostile rules: a `matches` never backtracks, and a pattern the linear-time engine cannot
run is refused at validation, naming file, line and field."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.clock import TestClock
from engine.rules import RulesRuntime, load_ruleset_text
from engine.rules.conditions import ConditionError, parse_condition
from tests.hostile.bounds import bounded, run_cli

NAME = "a" * 34  # (a|aa)+b took 5.55 s per evaluation on this with Python's re


def _ruleset(condition: str) -> str:
    return f"ruleset: hostile\nrules:\n  - {{id: r, on: t.e, when: {condition}, then: [{{allow: {{}}}}]}}\n"


def _evaluate(engine: str, condition: str, name: str) -> tuple[list[str], float]:
    runtime = RulesRuntime(TestClock(datetime(2026, 1, 1, tzinfo=UTC)), engine=engine)
    runtime.install(load_ruleset_text(_ruleset(condition)), 1)
    start = time.perf_counter()
    fired = [m.rule for m in runtime.evaluate("t.e", {"customer": {"name": name}}).matches]
    return fired, time.perf_counter() - start


@pytest.mark.parametrize("engine", ["durable", "python"])
@pytest.mark.parametrize(("condition", "fires"), [
    ('{not: {customer.name: {matches: "(a|aa)+b"}}}', True),
    ('{customer.name: {matches: "(a|aa)+b"}}', False),
    ('{customer.name: {matches: "(a*)*b"}}', False),
    ('{not: {customer.name: {matches: "(a|a)*(b|c)"}}}', True),
    # durable_rules' own DFA refused this one at install ("error code: 504"); RE2 runs it
    ('{customer.name: {matches: "(a|b)*a(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)"}}',
     True),
])
def test_a_backtracking_pattern_evaluates_in_milliseconds(engine: str, condition: str, fires: bool) -> None:
    outcome = bounded(_evaluate, engine, condition, NAME, seconds=10, memory_mb=512)
    assert outcome.error is None, outcome.error
    fired, seconds = outcome.value
    assert fired == (["r"] if fires else [])
    assert seconds < 0.5, f"one evaluation took {seconds:.2f} s"


@pytest.mark.parametrize(("pattern", "reason"), [
    ("a{1001}", "invalid repetition size"),
    ("((a{100}){100}){100}", "invalid repetition size"),
    ("(a", "missing )"),
    ("x" * 1001, "at most 1000"),
])
def test_a_pattern_re2_cannot_run_is_refused_at_its_line(tmp_path: Path, pattern: str, reason: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("ruleset: x\nrules:\n  - id: r\n    on: t.e\n    when:\n"
                    f"      customer.name: {{matches: \"{pattern}\"}}\n    then: [{{allow: {{}}}}]\n")
    result = run_cli(["validate", str(path)], seconds=30)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert f"{path}:6: rules[0].when.customer.name.matches:" in out, out
    assert reason in out, out
    assert "Traceback" not in out


_TOKENS = st.sampled_from(["a", "b", "(a|aa)", "(a|b)", "a*", "(a*)*", "a+", "[ab]", ".", "?", "*", "+", "{2,5}",
                           "(", ")", "|", "[", "]", "{", "}", "^", "\\d"])


def _evaluate_many(pattern: str) -> float:
    condition = f'{{not: {{customer.name: {{matches: "{pattern}"}}}}}}'
    runtime = RulesRuntime(TestClock(datetime(2026, 1, 1, tzinfo=UTC)), engine="python")
    try:
        runtime.install(load_ruleset_text(_ruleset(condition)), 1)
    except Exception:  # refused at validation: that is an answer too
        return 0.0
    start = time.perf_counter()
    for name in (NAME, "ab" * 40, "a" * 200 + "c"):
        runtime.evaluate("t.e", {"customer": {"name": name}})
    return time.perf_counter() - start


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_TOKENS, min_size=1, max_size=12).map("".join))
def test_any_pattern_is_refused_or_runs_in_linear_time(pattern: str) -> None:
    try:
        parse_condition({"customer.name": {"matches": pattern}})
    except ConditionError:
        return  # a clear refusal
    outcome = bounded(_evaluate_many, pattern, seconds=10, memory_mb=256)
    assert outcome.error is None, outcome.error
    assert outcome.value < 0.5, f"{pattern!r} took {outcome.value:.2f} s"
