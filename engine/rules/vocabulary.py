"""The closed vocabulary of rule actions, each declared once: its schema, and which subsystem
carries it out.

Rules (this package) own the schema, and every subsystem that acts on a decision sits above
it, so the table lives here: pricing reads `PRICING_ACTIONS` (rules/promotions.py), access
reads `ACCESS_ACTIONS` (access/rules.py, console/access.py), and automation binds a handler
to each of `AUTOMATION_ACTIONS`, with how it runs in a scheduler batch
(engine/automation/vocabulary.py, which a test checks against this table).

A new action: its JSON Schema under `$defs/action/properties` (FORMATS.md section 2), one
line here, and, when automation carries it out, its handler in automation's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Effector(Enum):
    """Who carries out an action: the subsystem that reads it from a decision."""

    PRICING = "pricing"  # a quote's or a bill's discounts, read at pricing time
    ACCESS = "access"  # the answer of an access check
    AUTOMATION = "automation"  # done once, after an event or in a scheduled sweep


@dataclass(frozen=True, slots=True)
class ActionKind:
    name: str
    effector: Effector
    summary: str

    @property
    def schema_ref(self) -> str:
        """Where rules.schema.json declares its parameters."""
        return f"#/$defs/action/properties/{self.name}"


VOCABULARY: tuple[ActionKind, ...] = (
    ActionKind("notify", Effector.AUTOMATION, "send a message from a template on some channels"),
    ActionKind("discount", Effector.PRICING, "a percent or amount off some prices, for some periods"),
    ActionKind("apply_coupon", Effector.PRICING, "a catalog coupon, when it applies to the plan"),
    ActionKind("allow", Effector.ACCESS, "grant the checked feature (deny wins)"),
    ActionKind("deny", Effector.ACCESS, "refuse the checked feature, maybe with an offer"),
    ActionKind("set_dunning_state", Effector.AUTOMATION, "move the customer's account to a dunning state"),
    ActionKind("retry_payment", Effector.AUTOMATION, "schedule another collection attempt"),
    ActionKind("cancel_subscription", Effector.AUTOMATION, "cancel the subscription, write the invoice off"),
    ActionKind("charge", Effector.AUTOMATION, "a one-off fee (a finalized invoice, by sales)"),
    ActionKind(
        "grant_credit", Effector.AUTOMATION, "a catalog's promotional grant into the customer's wallet (by sales)"
    ),
    ActionKind("emit", Effector.AUTOMATION, "publish an event"),
    ActionKind("tag", Effector.AUTOMATION, "add or remove customer tags"),
)

BY_NAME: dict[str, ActionKind] = {a.name: a for a in VOCABULARY}
ACTIONS: tuple[str, ...] = tuple(BY_NAME)


def names_for(effector: Effector) -> tuple[str, ...]:
    return tuple(a.name for a in VOCABULARY if a.effector is effector)


PRICING_ACTIONS = names_for(Effector.PRICING)
ACCESS_ACTIONS = names_for(Effector.ACCESS)
AUTOMATION_ACTIONS = names_for(Effector.AUTOMATION)
