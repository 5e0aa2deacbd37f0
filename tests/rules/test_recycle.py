"""Replaced ruleset versions give their durable_rules memory back: evaluations running through
hundreds of swaps all succeed with the answer of the version they report, and the process's
memory stays flat where durable's own Host would grow with every publish."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engine.rules.durable_engine as de
from engine.clock import TestClock
from engine.rules import DurableEngine, RulesEngineError, RulesRuntime, compile_ruleset, load_ruleset_text
from engine.rules.durable_engine import RetiredHandle

ROOT = Path(__file__).resolve().parents[2]

DENY = """\
ruleset: access
rules:
  - id: beta
    on: access.check
    when: {all: [{feature: beta_ai}, {customer.tags: {contains: partner}}]}
    then: [{deny: {reason: beta_closed}}]
  - {id: export, on: access.check, when: {feature: data_export}, then: [{allow: {reason: export}}]}
"""
ALLOW = DENY.replace("deny: {reason: beta_closed}", "allow: {reason: beta_open}")


def contexts() -> list[dict[str, Any]]:
    return [{"feature": f, "customer": {"tags": t}}
            for f in ("beta_ai", "data_export", "sso") for t in (["partner"], [], ["x", "partner"])]


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)


@pytest.mark.parametrize("owner", ["lock", "thread"])
def test_evaluations_through_hundreds_of_swaps_all_succeed_and_agree(clock: TestClock, owner: str) -> None:
    engine = DurableEngine(owner)
    rt = RulesRuntime(clock, durable=engine)
    versions = {1: load_ruleset_text(DENY), 0: load_ruleset_text(ALLOW)}
    ctxs = contexts()
    # What each version answers, from the pure-Python evaluator.
    reference = RulesRuntime(clock, engine="python")
    expected: dict[int, list[tuple[list[str], str | None]]] = {}
    for parity, ruleset in versions.items():
        reference.install(ruleset, parity)
        expected[parity] = [(d.rule_ids, d.access()) for d in (reference.evaluate("access.check", c) for c in ctxs)]
    assert expected[0] != expected[1]
    rt.install(versions[1], 1)
    stop = threading.Event()
    seen: list[tuple[int, int, list[str], str | None]] = []
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            while not stop.is_set():
                for i, c in enumerate(ctxs):
                    d = rt.evaluate("access.check", c)
                    seen.append((d.rulesets["access"], i, d.rule_ids, d.access()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for version in range(2, 202):
            rt.install(versions[version % 2], version)
            if version % 20 == 0:  # on a loaded machine the swaps can outrun the evaluators
                _wait_for(lambda v=version: any(seen_v >= v for seen_v, *_ in seen[-50:]))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert len({v for v, *_ in seen}) > 10  # the evaluations really ran across the swaps
    for version, i, rule_ids, outcome in seen:
        assert (rule_ids, outcome) == expected[version % 2][i], version
    assert rt.evaluate("access.check", ctxs[0]).rulesets == {"access": 201}
    assert (engine.registered, engine.retired) == (1, 200)
    engine.close()


def test_an_evaluation_that_meets_a_retired_version_starts_over_on_the_live_one(clock: TestClock) -> None:
    engine = DurableEngine()
    rt = RulesRuntime(clock, durable=engine)
    rt.install(load_ruleset_text(DENY), 1)
    stale = rt._by_event  # what an evaluation read just before the swap
    rt.install(load_ruleset_text(ALLOW), 2)
    fresh = rt._by_event

    class ReadsStaleOnce(dict[str, Any]):
        calls = 0

        def get(self, key: Any, default: Any = None) -> Any:
            self.calls += 1
            return (stale if self.calls == 1 else fresh).get(key, default)

    rt._by_event = ReadsStaleOnce()
    d = rt.evaluate("access.check", {"feature": "beta_ai", "customer": {"tags": ["partner"]}},
                    rulesets=iter(["access"]))  # read once, though the evaluation runs twice
    assert rt._by_event.calls == 2
    assert (d.rulesets["access"], d.access(), d.rule_ids) == (2, "allow", ["access/beta"])
    engine.close()


def test_a_retired_handle_is_never_posted_to_and_retiring_twice_is_harmless() -> None:
    engine = DurableEngine()
    compiled = compile_ruleset(load_ruleset_text(DENY), 1)
    handle = engine.register(compiled)
    body = '"_on":"access.check","p0s":"data_export"'
    assert engine.evaluate(handle, body) == [1]
    engine.retire(handle)
    engine.retire(handle)
    assert (engine.registered, engine.retired) == (0, 1)
    with pytest.raises(RetiredHandle):
        engine.evaluate(handle, body)
    with pytest.raises(RetiredHandle):
        engine.evaluate_many([(handle, body)])
    assert issubclass(RetiredHandle, RulesEngineError)
    engine.close()


def test_close_and_remove_give_the_memory_back_and_leave_the_runtime_usable(clock: TestClock) -> None:
    engine = DurableEngine()
    rt = RulesRuntime(clock, durable=engine)
    rt.install(load_ruleset_text(DENY), 1)
    rt.install(load_ruleset_text(DENY.replace("ruleset: access", "ruleset: other")), 1)
    assert engine.registered == 2
    rt.remove("other")
    assert (engine.registered, engine.retired) == (1, 1)
    rt.close()
    assert (engine.registered, engine.retired, rt.versions()) == (0, 2, {})
    assert rt.evaluate("access.check", {"feature": "data_export"}).matches == ()
    rt.install(load_ruleset_text(ALLOW), 3)
    assert rt.evaluate("access.check", {"feature": "data_export"}).access() == "allow"
    engine.close()


MEMORY = """
import json, sys
from datetime import UTC, datetime
from pathlib import Path
from engine.clock import TestClock
from engine.rules import DurableEngine, RulesRuntime, load_ruleset_text

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6

rulesets = [load_ruleset_text(p.read_text(), p.name) for p in sorted(Path("rules").glob("*.yaml"))]
ctxs = [{"feature": "beta_ai", "customer": {"tags": ["partner"], "segment": "edu"}, "plan": "pro",
         "account": {"dunning_state": s}, "invoice": {"attempt": n, "status": "open", "days_overdue": n}}
        for s in ("active", "suspended") for n in (1, 7, 14)]
events = sorted({e for r in rulesets for e in r.events})
engine = DurableEngine()
rt = RulesRuntime(TestClock(datetime(2026, 11, 15, tzinfo=UTC)), durable=engine, reclaim=sys.argv[1] == "1")
rt.install_many((r, 1) for r in rulesets)
for _ in range(3):
    for e in events:
        for c in ctxs:
            rt.evaluate(e, c)
before = rss()
for k in range(int(sys.argv[2])):
    rt.install(rulesets[k % len(rulesets)], 2 + k)
    for e in events:  # every version holds session state before it is replaced
        for c in ctxs:
            rt.evaluate(e, c)
print(json.dumps({"growth": rss() - before, "live": engine.registered}))
"""


def _growth(reclaim: bool, publishes: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", MEMORY, "1" if reclaim else "0", str(publishes)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_memory_stays_flat_over_many_publishes_where_keeping_versions_grows() -> None:
    # In child processes: durable memory a kept version holds is never returned.
    kept = _growth(False, 200)
    retired, more = _growth(True, 200), _growth(True, 600)
    assert kept["live"] == 200 + len(list((ROOT / "rules").glob("*.yaml")))
    assert retired["live"] == more["live"] == len(list((ROOT / "rules").glob("*.yaml")))
    assert kept["growth"] > 25  # durable's own behaviour: about 0.2 MB per version
    assert retired["growth"] < 5 and more["growth"] < 5  # three times the publishes, still flat


UNMATCHED = """
from engine.rules import DurableEngine, compile_ruleset, load_ruleset_text
engine = DurableEngine()
text = "ruleset: r\\nrules:\\n  - {id: a, on: t.e, when: {customer.n: 0}, then: [{allow: {}}]}\\n"
for k in range(300):
    compiled = compile_ruleset(load_ruleset_text(text), k)
    handle = engine.register(compiled)
    assert engine.evaluate(handle, '"_on":"t.e"') == []  # the session never fires a rule
    garbage = [bytes(range(256)) * (k % 7 + 1) for _ in range(50)]  # vary the heap it reuses
    engine.retire(handle)
print("ok", engine.retired)
"""


def test_retiring_versions_whose_sessions_never_fired_a_rule_does_not_crash() -> None:
    # durable 2.0.28's delete_state frees uninitialised pointers of a session where no action
    # ever ran; the engine primes every session. In a child: a crash must fail, not kill, the run.
    out = subprocess.run([sys.executable, "-c", UNMATCHED], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert (out.returncode, out.stdout.strip()) == (0, "ok 300"), out.stderr[-2000:]


ABANDONED = """
from engine.rules import DurableEngine, RulesEngineError, compile_ruleset, load_ruleset_text
import durable_rules_engine as dre
engine = DurableEngine()
text = "ruleset: r\\nrules:\\n  - {id: a, on: t.e, when: {customer.n: 0}, then: [{allow: {}}]}\\n"
for k in range(100):
    handle = engine.register(compile_ruleset(load_ruleset_text(text), k))
    try:
        engine.evaluate(handle, '"_on":"t.e",broken')  # durable refuses the text
    except dre.error:
        pass
    assert engine.evaluate(handle, '"_on":"t.e","p0n":0') == [0]  # the fresh session works
    engine.retire(handle)  # both sessions, the abandoned one too
print("ok", engine.abandoned_sids, engine.retired, engine.registered)
"""


def test_a_failed_evaluation_abandons_its_session_and_both_are_freed_on_retire() -> None:
    out = subprocess.run([sys.executable, "-c", ABANDONED], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert (out.returncode, out.stdout.strip()) == (0, "ok 100 100 0"), out.stderr[-2000:]


def test_repeated_facts_are_answered_from_memory_with_the_engines_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A billing run prices thousands of periods with the same few facts: the second asking is
    not posted to durable_rules again, and gets the same rules; the memory stays bounded."""

    engine = DurableEngine()
    handle = engine.register(compile_ruleset(load_ruleset_text(DENY), 1))
    bodies = ['"_on":"access.check","p0s":"data_export"', '"_on":"access.check","p0s":"sso"']
    first = [engine.evaluate(handle, b) for b in bodies]
    posted: list[str] = []
    monkeypatch.setattr(engine, "_evaluate", lambda h, b: posted.append(b) or [])
    assert [engine.evaluate(handle, b) for b in bodies] == first == [[1], []]
    assert posted == []
    monkeypatch.undo()
    monkeypatch.setattr(de, "MEMO_SIZE", 3)
    for i in range(10):
        engine.evaluate(handle, f'"_on":"access.check","p0s":"f{i}"')
    assert len(handle.memo) <= 3
    engine.close()
