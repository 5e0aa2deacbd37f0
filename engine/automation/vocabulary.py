"""Automation's part of the rule-action vocabulary (engine/rules/vocabulary.py declares every
action, its schema and who carries it out): for each action automation carries out, its
handler (one context, on the spot), how a scheduler batch does it (`plan`: collected and
written together at the end; None: on the spot, through the handler), and whether the
automation_actions ledger makes it happen once (`ledger`; notify and retry_payment are
deduplicated by messaging's key and the job key instead).

The event path (`ActionRunner.run`) and the batch path (`batch.act_batch`) both dispatch
through `HANDLING`, and nothing else: an action missing here is refused, and
tests/automation/test_vocabulary.py checks this table against the rules' vocabulary and
the ruleset schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from engine.automation import handlers, planners
from engine.automation.ledger import Cause
from engine.rules import Action, ActionKind, Effector
from engine.rules.vocabulary import BY_NAME

if TYPE_CHECKING:
    from engine.automation.actions import ActionRunner

Handler = Callable[["ActionRunner", Action, dict[str, Any], dict[str, Any], Cause], str]
Planner = Callable[["ActionRunner", planners.Pending, int, Action, dict[str, Any], Cause], None]


@dataclass(frozen=True, slots=True)
class Handling:
    kind: ActionKind
    handler: Handler
    plan: Planner | None = None  # None: a batch runs it on the spot
    ledger: bool = True  # the automation_actions ledger makes it happen once

    @property
    def batchable(self) -> bool:
        return self.plan is not None


def _entry(name: str, handler: Handler, plan: Planner | None = None, *, ledger: bool = True) \
        -> tuple[str, Handling]:
    kind = BY_NAME[name]
    assert kind.effector is Effector.AUTOMATION, f"{name} is carried out by {kind.effector.value}"
    return name, Handling(kind, handler, plan, ledger)


HANDLING: Mapping[str, Handling] = MappingProxyType(dict([
    _entry("notify", handlers.notify, planners.plan_notify, ledger=False),
    _entry("set_dunning_state", handlers.set_dunning_state, planners.plan_dunning_state),
    _entry("retry_payment", handlers.retry_payment, ledger=False),
    _entry("cancel_subscription", handlers.cancel_subscription, planners.plan_cancel),
    _entry("charge", handlers.charge),
    _entry("emit", handlers.emit),
    _entry("tag", handlers.tag),
]))


def ours(action: Action) -> bool:
    """Whether automation carries the action out (pricing and access read the others)."""
    kind = BY_NAME.get(action.name)
    if kind is None:
        raise ValueError(f"{action.name!r} is not a rule action")
    return kind.effector is Effector.AUTOMATION


def handling_of(action: Action) -> Handling:
    return HANDLING[action.name]
