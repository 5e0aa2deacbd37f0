"""Hostile YAML: every document the engine reads (catalogs, rulesets, console drafts) goes
through one loader that refuses repeated keys at their line, alias bombs, deep nesting and
oversized texts before they cost memory or time, and answers malformed text at the right line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.console import yaml_edit
from engine.console.drafts import check_draft
from engine.documents import DocumentError, load_yaml_text
from tests.hostile.bounds import bounded, run_cli

ROOT = Path(__file__).resolve().parents[2]


def _laughs(levels: int = 9) -> str:
    """~1 KB that expands to 10**levels values."""
    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "catalog: bomb\ncurrency: EUR\n" + "\n".join(lines) + "\n"


CATALOG = (ROOT / "catalogs").glob("*.yaml").__next__().read_text()

# (name, text, the line the answer must name, a phrase the answer must hold)
CORPUS = [
    ("billion-laughs", _laughs(), 1, "aliases expand it"),
    ("recursive-alias", "catalog: x\na: &a [1, *a]\n", 2, "recursive"),
    ("deep-flow", "catalog: x\na: " + "[" * 3000 + "]" * 3000 + "\n", 2, "levels deep"),
    ("deep-block", "catalog: x\n" + "".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n", 65,
     "levels deep"),
    ("oversized", "catalog: x\ndescription: '" + "x" * 1_000_001 + "'\n", 1, "over 1,000,000 bytes"),
    ("two-pro-plans", "catalog: x\ncurrency: EUR\nplans:\n  pro: {name: A, interval: month}\n"
                      "  basic: {name: B, interval: month}\n  pro: {name: C, interval: month}\n", 6, "duplicate key 'pro'"),
    ("duplicate-metric", "catalog: x\ncurrency: EUR\nmetrics:\n  calls: {event: a.b, aggregation: count}\n"
                         "  calls: {event: a.c, aggregation: count}\n", 5, "duplicate key 'calls'"),
    ("duplicate-top-level", "catalog: x\ncurrency: EUR\ncurrency: USD\n", 3, "duplicate key 'currency'"),
    ("key-without-colon", "catalog: x\ncurrency EUR\nplans: {}\n", 2, "could not find expected ':'"),
    ("unclosed-quote", "catalog: x\ndescription: \"a store\ncurrency: EUR\n", 2, "quoted scalar"),
]


@pytest.mark.parametrize(("name", "text", "line", "phrase"), CORPUS, ids=[c[0] for c in CORPUS])
def test_the_loader_answers_at_the_line(name: str, text: str, line: int, phrase: str) -> None:
    def load() -> list[tuple[int, str]]:
        try:
            load_yaml_text(text, "f.yaml")
        except DocumentError as exc:
            return [(p.line, p.message) for p in exc.problems]
        return []

    outcome = bounded(load, seconds=5, memory_mb=256)
    assert outcome.error is None, outcome.error
    assert outcome.value, f"{name} was accepted"
    assert outcome.value[0][0] == line, outcome.value
    assert phrase in outcome.value[0][1], outcome.value


@pytest.mark.parametrize("command", ["validate", "lint"])
@pytest.mark.parametrize(("name", "text", "line", "phrase"), [c for c in CORPUS if c[0] != "oversized"],
                         ids=[c[0] for c in CORPUS if c[0] != "oversized"])
def test_the_cli_answers_every_hostile_document(tmp_path: Path, command: str, name: str, text: str, line: int,
                                                phrase: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    result = run_cli([command, str(path)], seconds=30, memory_mb=1024)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"{path}:{line}:" in out and phrase in out, out
    assert "Traceback" not in out


def test_the_console_checks_a_bomb_on_every_keystroke_in_milliseconds() -> None:
    def check() -> list[str]:
        return [p.message for p in check_draft("catalog", _laughs()).errors]

    outcome = bounded(check, seconds=5, memory_mb=256)
    assert outcome.error is None, outcome.error
    assert outcome.seconds < 1 and "aliases expand it" in outcome.value[0], outcome


def test_the_console_forms_refuse_what_the_loader_refuses() -> None:
    def edit() -> str:
        try:
            yaml_edit.add_plan(_laughs(), "pro", "Pro")
        except yaml_edit.EditError as exc:
            return str(exc)
        return "accepted"

    outcome = bounded(edit, seconds=5, memory_mb=256)
    assert outcome.error is None, outcome.error
    assert "aliases expand it" in outcome.value


def test_a_shipped_catalog_still_loads() -> None:
    assert load_yaml_text(CATALOG, "c.yaml").data["catalog"]


_PIECES = st.sampled_from(["a", "b", ": ", "&x ", "*x", "&y ", "*y", "[", "]", "{", "}", ", ", "\n", "  ", "- ",
                           "'", '"', "<<: ", "? ", "!!str ", "1", "#"])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_any_text_is_loaded_or_refused_within_bounds(text: str) -> None:
    def load() -> str:
        try:
            load_yaml_text(text, "f.yaml")
        except DocumentError as exc:
            assert all(p.line >= 1 for p in exc.problems)
            return "refused"
        return "loaded"

    outcome = bounded(load, seconds=5, memory_mb=256)
    assert outcome.error is None, f"{text!r}: {outcome.error}"
