"""Automation's part of the rule-action vocabulary (engine/rules/vocabulary.py declares every
action, its schema and who carries it out): how automation carries out each of its actions,
the same way in an event's path (`ActionRunner`) and in a scheduler batch (`batch.act_batch`):

  Collected  planned into `planners.Pending` and written in bulk by `planners.flush`: a
             batch flushes all its subjects' at once, an event's action is a batch of one
  OnTheSpot  its handler runs at once (automation/handlers.py), once thanks to the
             automation_actions ledger (`ledger`) or to its own key (retry_payment: the job)

Both paths dispatch through `HANDLING`, and nothing else; tests/automation/test_vocabulary.py
checks it against the rules' vocabulary and the ruleset schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from engine.automation import handlers, planners
from engine.automation.ledger import Cause
from engine.automation.ports import Runner
from engine.rules import Action, ActionKind, Effector
from engine.rules.vocabulary import BY_NAME

Handler = Callable[[Runner, Action, dict[str, Any], dict[str, Any], Cause], str]
Planner = Callable[[Runner, planners.Pending, int, Action, dict[str, Any], Cause], None]


@dataclass(frozen=True, slots=True)
class Collected:
    """Written in bulk (batchable): planned now, written by `planners.flush`."""

    kind: ActionKind
    plan: Planner


@dataclass(frozen=True, slots=True)
class OnTheSpot:
    """Carried out at once by its handler, in a batch too."""

    kind: ActionKind
    handler: Handler
    ledger: bool = True  # the automation_actions ledger makes it happen once


Handling = Collected | OnTheSpot


def _kind(name: str) -> ActionKind:
    kind = BY_NAME[name]
    assert kind.effector is Effector.AUTOMATION, f"{name} is carried out by {kind.effector.value}"
    return kind


HANDLING: Mapping[str, Handling] = MappingProxyType({h.kind.name: h for h in (
    Collected(_kind("notify"), planners.plan_notify),  # messaging's key makes it happen once
    Collected(_kind("set_dunning_state"), planners.plan_dunning_state),
    Collected(_kind("cancel_subscription"), planners.plan_cancel),
    OnTheSpot(_kind("retry_payment"), handlers.retry_payment, ledger=False),  # the job key
    OnTheSpot(_kind("charge"), handlers.charge),
    OnTheSpot(_kind("grant_credit"), handlers.grant_credit),
    OnTheSpot(_kind("emit"), handlers.emit),
    OnTheSpot(_kind("tag"), handlers.tag),
)})


def ours(action: Action) -> bool:
    """Whether automation carries the action out (pricing and access read the others)."""
    kind = BY_NAME.get(action.name)
    if kind is None:
        raise ValueError(f"{action.name!r} is not a rule action")
    return kind.effector is Effector.AUTOMATION


def handling_of(action: Action) -> Handling:
    return HANDLING[action.name]
