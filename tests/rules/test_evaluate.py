"""Evaluation through durable_rules and the reference evaluator alike: every test of the
condition language, every action, order, dates from the clock, deny over allow."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from engine.clock import TestClock
from engine.rules import RulesRuntime, load_ruleset_text

OPERATORS = """\
ruleset: ops
rules:
  - {id: eq-string, on: t.e, when: {customer.segment: edu}, then: [{allow: {}}]}
  - {id: eq-number, on: t.e, when: {invoice.attempt: 2}, then: [{allow: {}}]}
  - {id: eq-bool, on: t.e, when: {customer.vip: true}, then: [{allow: {}}]}
  - {id: eq-null, on: t.e, when: {customer.segment: null}, then: [{allow: {}}]}
  - {id: ne, on: t.e, when: {account.dunning_state: {ne: suspended}}, then: [{allow: {}}]}
  - {id: gt, on: t.e, when: {invoice.total: {gt: 100}}, then: [{allow: {}}]}
  - {id: gte, on: t.e, when: {invoice.total: {gte: 100}}, then: [{allow: {}}]}
  - {id: lt, on: t.e, when: {invoice.total: {lt: 100}}, then: [{allow: {}}]}
  - {id: lte, on: t.e, when: {invoice.total: {lte: 100}}, then: [{allow: {}}]}
  - {id: date-after, on: t.e, when: {customer.created: {gte: "2026-01-01"}}, then: [{allow: {}}]}
  - {id: in, on: t.e, when: {customer.country: {in: [DE, AT]}}, then: [{allow: {}}]}
  - {id: not-in, on: t.e, when: {customer.country: {not_in: [DE, AT]}}, then: [{allow: {}}]}
  - {id: exists, on: t.e, when: {customer.email: {exists: true}}, then: [{allow: {}}]}
  - {id: missing, on: t.e, when: {customer.email: {exists: false}}, then: [{allow: {}}]}
  - {id: matches, on: t.e, when: {customer.email: {matches: ".*@school[.]edu"}}, then: [{allow: {}}]}
  - {id: not-matches, on: t.e, when: {not: {customer.email: {matches: ".*@school[.]edu"}}}, then: [{allow: {}}]}
  - {id: contains, on: t.e, when: {customer.tags: {contains: partner}}, then: [{allow: {}}]}
  - {id: range, on: t.e, when: {usage.api_calls: {gte: 800, lt: 1000}}, then: [{allow: {}}]}
  - {id: any, on: t.e, when: {any: [{customer.segment: gov}, {customer.tags: {contains: ngo}}]}, then: [{allow: {}}]}
  - {id: all-not, on: t.e, when: {all: [{customer.segment: edu}, {not: {customer.country: DE}}]}, then: [{allow: {}}]}
"""


def fired(runtime: RulesRuntime, ctx: dict[str, Any], event: str = "t.e") -> set[str]:
    return {m.rule for m in runtime.evaluate(event, ctx).matches}


@pytest.fixture
def ops(engine_kind: str, clock: TestClock) -> RulesRuntime:
    rt = RulesRuntime(clock, engine=engine_kind)
    rt.install(load_ruleset_text(OPERATORS), 1)
    return rt


@pytest.mark.parametrize(
    ("ctx", "expected"),
    [
        ({}, {"eq-null", "ne", "not-in", "missing", "not-matches"}),
        ({"customer": {"segment": "edu", "country": "DE"}}, {"eq-string", "ne", "in", "missing", "not-matches"}),
        ({"customer": {"segment": "edu", "country": "FR"}},
         {"eq-string", "ne", "not-in", "missing", "not-matches", "all-not"}),
        ({"invoice": {"attempt": 2, "total": Decimal("100.00")}},
         {"eq-number", "gte", "lte", "eq-null", "ne", "not-in", "missing", "not-matches"}),
        ({"invoice": {"attempt": "2", "total": Decimal("100.01")}},  # "2" is text, not the number 2
         {"gt", "gte", "eq-null", "ne", "not-in", "missing", "not-matches"}),
        ({"invoice": {"total": 99}, "customer": {"vip": True, "segment": "gov"}},
         {"lt", "lte", "eq-bool", "ne", "not-in", "missing", "not-matches", "any"}),
        ({"customer": {"vip": 1, "email": "ann@school.edu", "tags": ["partner", "ngo"]}},
         {"eq-null", "ne", "not-in", "exists", "matches", "contains", "any"}),
        ({"customer": {"email": "ann@school.educ", "tags": []}, "account": {"dunning_state": "suspended"}},
         {"eq-null", "not-in", "exists", "not-matches"}),
        ({"usage": {"api_calls": 800}}, {"range", "eq-null", "ne", "not-in", "missing", "not-matches"}),
        ({"usage": {"api_calls": Decimal("999.99")}}, {"range", "eq-null", "ne", "not-in", "missing", "not-matches"}),
        ({"usage": {"api_calls": 1000}}, {"eq-null", "ne", "not-in", "missing", "not-matches"}),
        ({"customer": {"created": date(2026, 3, 1)}}, {"date-after", "eq-null", "ne", "not-in", "missing", "not-matches"}),
        ({"customer": {"created": datetime(2025, 12, 31, 23, 0, tzinfo=UTC)}},
         {"eq-null", "ne", "not-in", "missing", "not-matches"}),
    ],
)
def test_every_operator(ops: RulesRuntime, ctx: dict[str, Any], expected: set[str]) -> None:
    assert fired(ops, ctx) == expected


def test_other_events_fire_nothing(ops: RulesRuntime) -> None:
    assert fired(ops, {"customer": {"segment": "edu"}}, event="other.event") == set()


ACTIONS = """\
ruleset: acts
rules:
  - id: every-action
    on: t.e
    then:
      - notify: {template: payment_failed, channels: [email, sms], data: {x: 1}}
      - discount: {percent: 12.5, prices: [base], periods: 2, reason: because}
      - discount: {amount: "5.00"}
      - apply_coupon: {code: FLAT10}
      - allow: {reason: ok}
      - deny: {reason: "no", offer: {plan: pro, coupon: WELCOME20}}
      - set_dunning_state: {state: warning}
      - retry_payment: {after: 3d}
      - cancel_subscription: {}
      - charge: {amount: "15.00", description: Late fee}
      - emit: {type: custom.thing, data: {a: b}}
      - tag: {add: [late], remove: [good]}
"""


def test_every_action_comes_back_as_plain_data(engine_kind: str, clock: TestClock) -> None:
    rt = RulesRuntime(clock, engine=engine_kind)
    rt.install(load_ruleset_text(ACTIONS), 7)
    d = rt.evaluate("t.e", {})
    assert [a.name for a in d.actions] == [
        "notify", "discount", "discount", "apply_coupon", "allow", "deny", "set_dunning_state",
        "retry_payment", "cancel_subscription", "charge", "emit", "tag"]
    a = d.actions
    assert a[0].params == {"template": "payment_failed", "channels": ("email", "sms"), "data": {"x": 1}}
    assert a[1].params == {"percent": Decimal("12.5"), "prices": ("base",), "periods": 2, "reason": "because"}
    assert a[2].params["amount"] == Decimal("5.00") and isinstance(a[2].params["amount"], Decimal)
    assert a[8].params == {"at": "period_end"}
    assert a[9].params["amount"] == Decimal("15.00")
    assert {(x.ruleset, x.rule, x.version) for x in a} == {("acts", "every-action", 7)}
    assert d.access() == "deny"


def test_deny_wins_over_allow_and_order_is_priority_then_file(engine_kind: str, clock: TestClock) -> None:
    rt = RulesRuntime(clock, engine=engine_kind)
    rt.install(load_ruleset_text("""\
ruleset: acc
rules:
  - {id: allow-partner, on: access.check, when: {customer.tags: {contains: partner}}, then: [{allow: {reason: partner}}]}
  - {id: deny-suspended, on: access.check, priority: 200, when: {account.dunning_state: suspended}, then: [{deny: {reason: overdue}}]}
  - {id: first, on: access.check, priority: 1, then: [{emit: {type: a.b}}]}
  - {id: disabled, on: access.check, enabled: false, then: [{deny: {}}]}
"""), 1)
    d = rt.evaluate("access.check", {"customer": {"tags": ["partner"]}, "account": {"dunning_state": "suspended"}})
    assert [m.rule for m in d.matches] == ["first", "allow-partner", "deny-suspended"]
    assert d.access() == "deny"
    d = rt.evaluate("access.check", {"customer": {"tags": ["partner"]}, "account": {"dunning_state": "active"}})
    assert d.access() == "allow"
    assert rt.evaluate("access.check", {}).access() is None


def test_a_rule_starts_and_stops_by_date_on_the_engine_clock(engine_kind: str) -> None:
    clock = TestClock(datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    rt = RulesRuntime(clock, engine=engine_kind)
    rt.install(load_ruleset_text("""\
ruleset: promo
rules:
  - id: november
    on: price.calculate
    valid_from: 2026-11-01
    valid_until: 2026-11-30
    then: [{discount: {percent: 10}}]
"""), 1)
    assert fired(rt, {}, "price.calculate") == set()
    clock.set(datetime(2026, 11, 1, tzinfo=UTC))
    assert fired(rt, {}, "price.calculate") == {"november"}
    clock.set(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))  # valid_until is the whole last day
    assert fired(rt, {}, "price.calculate") == {"november"}
    clock.set(datetime(2026, 11, 30, tzinfo=UTC) + timedelta(days=1))
    assert fired(rt, {}, "price.calculate") == set()


def test_scheduled_rules_are_listed_and_evaluated_per_subject(engine_kind: str, clock: TestClock) -> None:
    rt = RulesRuntime(clock, engine=engine_kind)
    rt.install(load_ruleset_text("""\
ruleset: dun
rules:
  - id: suspend
    schedule: "0 6 * * *"
    for_each: invoice
    when: {all: [{invoice.status: open}, {invoice.days_overdue: {gte: 14}}]}
    then: [{set_dunning_state: {state: suspended}}]
  - {id: evt, on: invoice.paid, then: [{set_dunning_state: {state: active}}]}
"""), 3)
    [s] = rt.scheduled_rules()
    assert (s.ruleset, s.rule, s.schedule, s.for_each, s.version) == ("dun", "suspend", "0 6 * * *", "invoice", 3)
    d = rt.evaluate_scheduled("dun", "suspend", {"invoice": {"status": "open", "days_overdue": 15}})
    assert [a.params["state"] for a in d.actions] == ["suspended"]
    assert rt.evaluate_scheduled("dun", "suspend", {"invoice": {"status": "open", "days_overdue": 13}}).actions == []
    assert rt.evaluate("invoice.paid", {}).rule_ids == ["dun/evt"]  # a scheduled rule never reacts to events
    with pytest.raises(KeyError):
        rt.evaluate_scheduled("dun", "evt", {})


def test_the_trace_names_versions_and_the_inputs_that_decided(clock: TestClock) -> None:
    rt = RulesRuntime(clock)
    rt.install(load_ruleset_text(OPERATORS), 4)
    d = rt.evaluate("t.e", {"customer": {"segment": "edu", "country": "FR", "name": "x"}})
    m = {m.rule: m for m in d.matches}["all-not"]
    assert m.version == 4
    assert dict(m.inputs) == {"customer.segment": "edu", "customer.country": "FR"}
    assert d.rulesets == {"ops": 4}
    assert d.to_dict()["matches"][0]["ruleset"] == "ops"


def test_evaluate_many_matches_one_by_one(clock: TestClock) -> None:
    rt = RulesRuntime(clock)
    rt.install(load_ruleset_text(OPERATORS), 1)
    ctxs = [{"customer": {"segment": s, "country": c}} for s in ("edu", "gov", None) for c in ("DE", "FR")]
    many = rt.evaluate_many([("t.e", c) for c in ctxs])
    assert [d.rule_ids for d in many] == [rt.evaluate("t.e", c).rule_ids for c in ctxs]
