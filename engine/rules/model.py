"""Rulesets as typed, immutable values, and what an evaluation returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.rules.conditions import Node, jsonable
from engine.rules.vocabulary import ACCESS_ACTIONS
from engine.rules.vocabulary import ACTIONS as ACTIONS  # the loader reads the names here

DEFAULT_STATES: tuple[str, ...] = ("active", "warning", "suspended", "cancelled")
SUBJECTS: tuple[str, ...] = ("customer", "subscription", "invoice")


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action as the rule wrote it: a name from the closed vocabulary and its params
    (amounts as Decimal, durations as their text)."""

    name: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    index: int  # position in the file: ties in priority keep file order
    then: tuple[ActionSpec, ...]
    on: tuple[str, ...] = ()
    schedule: str | None = None
    for_each: str | None = None
    when: Node | None = None
    priority: int = 100
    enabled: bool = True
    valid_from: datetime | None = None
    valid_until: datetime | None = None  # exclusive instant (a date means the end of that day)
    description: str = ""

    def active_at(self, now: datetime) -> bool:
        if self.valid_from is not None and now < self.valid_from:
            return False
        return not (self.valid_until is not None and now >= self.valid_until)


@dataclass(frozen=True)
class Ruleset:
    name: str
    rules: tuple[Rule, ...]
    description: str = ""
    states: tuple[str, ...] = DEFAULT_STATES
    source: str = ""  # the text it was loaded from (what a version stores)
    file: str = ""
    checksum: str = ""

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(f"ruleset {self.name} has no rule {rule_id!r}")

    @property
    def events(self) -> frozenset[str]:
        return frozenset(e for r in self.rules if r.enabled for e in r.on)


@dataclass(frozen=True, slots=True)
class Action:
    """An action a matched rule asked for, as plain data: the caller (pricing, access,
    dunning, messaging) carries it out. Nothing runs inside the rules engine."""

    name: str
    params: Mapping[str, Any]
    ruleset: str
    rule: str
    version: int = 0

    @property
    def action(self) -> str:  # the name engine.access.RuleAction uses
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.name, "params": jsonable(dict(self.params)), "ruleset": self.ruleset,
                "rule": self.rule, "version": self.version}


@dataclass(frozen=True)
class Match:
    """One rule that held: which, in which version, what it asked for, and the values of
    the input paths its condition read (what decided)."""

    ruleset: str
    version: int
    rule: str
    priority: int
    actions: tuple[Action, ...]
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, ruleset: str, version: int, rule: str, priority: int, actions: tuple[Action, ...],
                 inputs: Mapping[str, Any] | None = None) -> None:
        # Made on every evaluation: filling __dict__ directly is twice as fast as the frozen
        # dataclass __init__ (one object.__setattr__ per field); assignment still raises.
        d = self.__dict__
        d["ruleset"], d["version"], d["rule"], d["priority"] = ruleset, version, rule, priority
        d["actions"], d["inputs"] = actions, {} if inputs is None else inputs

    def to_dict(self) -> dict[str, Any]:
        return {"ruleset": self.ruleset, "version": self.version, "rule": self.rule,
                "actions": [a.name for a in self.actions],
                "inputs": {k: jsonable(v) for k, v in self.inputs.items()}}


@dataclass(frozen=True)
class Decision:
    """The trace of one evaluation: the matched rules in order and their actions."""

    event: str
    time: datetime
    matches: tuple[Match, ...]
    rulesets: Mapping[str, int]  # the versions that were consulted
    decision_id: str | None = None

    def __init__(self, event: str, time: datetime, matches: tuple[Match, ...], rulesets: Mapping[str, int],
                 decision_id: str | None = None) -> None:
        d = self.__dict__  # one per evaluation: see Match.__init__
        d["event"], d["time"], d["matches"], d["rulesets"], d["decision_id"] = (
            event, time, matches, rulesets, decision_id)

    @property
    def actions(self) -> list[Action]:
        return [a for m in self.matches for a in m.actions]

    @property
    def rule_ids(self) -> list[str]:
        return [f"{m.ruleset}/{m.rule}" for m in self.matches]

    def actions_named(self, *names: str) -> list[Action]:
        return [a for a in self.actions if a.name in names]

    def access(self) -> str | None:
        """'deny' if any rule denied (deny wins), 'allow' if one allowed, else None: the
        plan's own answer stands."""
        names = {a.name for a in self.actions if a.name in ACCESS_ACTIONS}
        if "deny" in names:
            return "deny"
        if "allow" in names:
            return "allow"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "event": self.event,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "rulesets": dict(self.rulesets),
            "matches": [m.to_dict() for m in self.matches],
            "actions": [a.to_dict() for a in self.actions],
        }
