"""Publish, history, rollback, hot swap while evaluations run, a rejected ruleset changes
nothing, the decision log, and 8 threads agreeing with serial evaluation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.clock import TestClock
from engine.documents import DocumentError, load_yaml_text
from engine.rules import (
    DurableEngine,
    References,
    RulesRuntime,
    decision_by_id,
    decisions_for,
    load_ruleset_text,
    publish_ruleset,
    rollback_ruleset,
    ruleset_history,
    sync_runtime,
)
from engine.rules.models import RuleVersion
from engine.store import Database, OutboxEvent

V1 = """\
ruleset: access
rules:
  - id: beta
    on: access.check
    when: {feature: beta_ai}
    then: [{deny: {reason: beta_closed}}]
"""
V2 = V1.replace("deny: {reason: beta_closed}", "allow: {reason: beta_open}")
BROKEN = V1.replace("deny: {reason: beta_closed}", "deny: {reason: beta_closed, why: x}")


def doc(text: str) -> Any:
    return load_yaml_text(text, "access.yaml")


def test_publish_history_diff_and_rollback(db: Database, clock: TestClock) -> None:
    refs = References()
    with db.session() as s:
        p1 = publish_ruleset(s, doc(V1), "ann", "first", refs=refs, clock=clock, smoke=False)
        same = publish_ruleset(s, doc(V1), "bob", "again", refs=refs, clock=clock, smoke=False)
        p2 = publish_ruleset(s, doc(V2), "bob", "open the beta", refs=refs, clock=clock, smoke=False)
    assert (p1.version, p1.created, same.version, same.created, p2.version) == (1, True, 1, False, 2)
    with db.session() as s:
        back = rollback_ruleset(s, "access", 1, "carol", clock=clock)
    assert back.version == 3 and back.checksum == p1.checksum
    with db.session() as s:
        rows = ruleset_history(s, "access")
        assert [(r.version, r.author, r.comment, r.rollback_of) for r in rows] == [
            (1, "ann", "first", None), (2, "bob", "open the beta", None), (3, "carol", "rollback to version 1", 1)]
        assert "-    then: [{deny: {reason: beta_closed}}]" in rows[1].diff
        assert "+    then: [{allow: {reason: beta_open}}]" in rows[1].diff
        assert rows[2].source == V1
        assert s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "rules.published")) == 3


def test_a_rejected_ruleset_changes_nothing_and_the_previous_version_stays_live(db: Database, clock: TestClock) -> None:
    rt = RulesRuntime(clock)
    with db.session() as s:
        publish_ruleset(s, doc(V1), "ann", refs=References(), clock=clock, smoke=False)
    sync_runtime(rt, db)
    with pytest.raises(DocumentError) as exc, db.session() as s:
        publish_ruleset(s, doc(BROKEN), "ann", refs=References(), clock=clock, smoke=False)
    assert "access.yaml:6: rules[0].then[0].deny.why: unknown field 'why'" in str(exc.value)
    assert sync_runtime(rt, db) == []
    with db.session() as s:
        assert [r.version for r in ruleset_history(s, "access")] == [1]
    assert rt.evaluate("access.check", {"feature": "beta_ai"}).access() == "deny"


def test_publish_smoke_tests_in_a_subprocess(sqlite_db: Database, clock: TestClock) -> None:
    with sqlite_db.session() as s:
        p = publish_ruleset(s, doc(V1), "ann", refs=References(), clock=clock)
    assert p.version == 1
    with pytest.raises(ValueError, match="author"), sqlite_db.session() as s:
        publish_ruleset(s, doc(V2), " ", refs=References(), clock=clock)


def test_hot_swap_and_rollback_while_evaluations_run(sqlite_db: Database, clock: TestClock) -> None:
    rt = RulesRuntime(clock)
    with sqlite_db.session() as s:
        publish_ruleset(s, doc(V1), "ann", refs=References(), clock=clock, smoke=False)
    sync_runtime(rt, sqlite_db)
    stop = threading.Event()
    seen: list[tuple[int, str | None]] = []
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            while not stop.is_set():
                d = rt.evaluate("access.check", {"feature": "beta_ai"})
                seen.append((d.rulesets["access"], d.access()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for text in (V2, V1):
            with sqlite_db.session() as s:
                publish_ruleset(s, doc(text), "ann", refs=References(), clock=clock, smoke=False)
            assert sync_runtime(rt, sqlite_db) == ["access"]
        with sqlite_db.session() as s:
            rollback_ruleset(s, "access", 2, "ann", clock=clock)
        sync_runtime(rt, sqlite_db)
        n = len(seen)
        while len(seen) < n + 50:
            pass
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    expected = {1: "deny", 2: "allow", 3: "deny", 4: "allow"}
    assert {v for v, _ in seen} >= {1, 4}
    assert all(expected[v] == outcome for v, outcome in seen)  # never a mix of two versions
    assert rt.versions() == {"access": 4}


def test_the_decision_log_answers_why(db: Database, clock: TestClock) -> None:
    rt = RulesRuntime(clock)
    rt.install(load_ruleset_text(V1), 1)
    d = rt.evaluate("access.check", {"feature": "beta_ai", "customer": {"id": "cus_1"}}, log=db, event_id="evt_1")
    assert d.decision_id and d.decision_id.startswith("dec_")
    with db.session() as s:
        [row] = decisions_for(s, "cus_1")
        assert row.decision_id == d.decision_id
        assert (row.outcome, row.rules, row.rulesets, row.event_id) == ("deny", ["access/beta"], {"access": 1}, "evt_1")
        assert row.inputs == {"access/beta": {"feature": "beta_ai"}}
        assert row.actions[0]["params"] == {"reason": "beta_closed"}
        assert decision_by_id(s, d.decision_id) is not None
        assert s.scalar(select(func.count()).select_from(RuleVersion)) == 0


@pytest.mark.parametrize("owner", ["lock", "thread"])
def test_eight_threads_agree_with_serial_evaluation(clock: TestClock, owner: str) -> None:
    engine = DurableEngine(owner)
    rt = RulesRuntime(clock, durable=engine)
    rt.install(load_ruleset_text("""\
ruleset: mix
rules:
  - {id: a, on: t.e, when: {customer.n: {gte: 50}}, then: [{allow: {}}]}
  - {id: b, on: t.e, when: {customer.seg: {in: [s1, s3]}}, then: [{deny: {}}]}
  - {id: c, on: t.e, when: {not: {customer.tags: {contains: x}}}, then: [{tag: {add: [y]}}]}
"""), 1)
    ctxs = [{"customer": {"n": i % 100, "seg": f"s{i % 5}", "tags": ["x"] if i % 3 else []}} for i in range(4000)]
    serial = [rt.evaluate("t.e", c).rule_ids for c in ctxs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda c: rt.evaluate("t.e", c).rule_ids, ctxs))
    assert parallel == serial
    assert {tuple(x) for x in serial} >= {("mix/a", "mix/b"), ("mix/c",), ()}
    engine.close()
