"""The rule-action vocabulary is declared once (engine/rules/vocabulary.py) and matches the
ruleset JSON Schema exactly; automation binds one handler to each action it carries out
(engine/automation/vocabulary.py), and only to those."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources

from engine.automation import HANDLING, Collected, OnTheSpot
from engine.automation.vocabulary import ours
from engine.rules import ACCESS_ACTIONS, ACTIONS, AUTOMATION_ACTIONS, PRICING_ACTIONS, VOCABULARY, Action, Effector


def _schema() -> dict:
    text = resources.files("engine.rules.schemas").joinpath("rules.schema.json").read_text()
    return json.loads(text)


def _resolve(schema: dict, ref: str) -> object:
    node: object = schema
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_every_schema_action_has_exactly_one_entry_and_vice_versa() -> None:
    schema = _schema()
    in_schema = set(schema["$defs"]["action"]["properties"])
    names = Counter(a.name for a in VOCABULARY)
    assert [n for n, c in names.items() if c > 1] == []
    assert set(names) == in_schema
    assert set(ACTIONS) == in_schema
    for kind in VOCABULARY:
        assert isinstance(_resolve(schema, kind.schema_ref), dict)


def test_each_action_has_one_effector() -> None:
    groups = [set(PRICING_ACTIONS), set(ACCESS_ACTIONS), set(AUTOMATION_ACTIONS)]
    assert sum(len(g) for g in groups) == len(VOCABULARY)
    assert set().union(*groups) == set(ACTIONS)
    assert set(PRICING_ACTIONS) == {"discount", "apply_coupon"}
    assert set(ACCESS_ACTIONS) == {"allow", "deny"}


def test_automation_handles_exactly_its_actions() -> None:
    assert set(HANDLING) == set(AUTOMATION_ACTIONS)
    for name, handling in HANDLING.items():
        assert handling.kind.name == name
        assert handling.kind.effector is Effector.AUTOMATION
    # Written in bulk, by a batch and an event's runner alike; the rest run on the spot.
    assert {n for n, h in HANDLING.items() if isinstance(h, Collected)} == \
        {"notify", "set_dunning_state", "cancel_subscription"}
    # The job key, not the automation_actions ledger, makes a retry happen once.
    assert {n for n, h in HANDLING.items() if isinstance(h, OnTheSpot) and not h.ledger} == {"retry_payment"}


def test_ours_is_the_effector() -> None:
    for kind in VOCABULARY:
        action = Action(kind.name, {}, "rs", "r")
        assert ours(action) is (kind.effector is Effector.AUTOMATION)
