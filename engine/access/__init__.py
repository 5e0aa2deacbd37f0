"""Access control: may a customer use a feature? Plans, quotas, dunning state and access
rules decide; never product code. A denial publishes `access.denied`."""

from engine.access.decision import (
    NO_RULES,
    Decision,
    RuleAction,
    RulesAnswer,
    Snapshot,
    combine,
    plan_decision,
    rule_context,
    upgrade_offer,
)
from engine.access.readers import AccessReaders, CustomerInputs
from engine.access.rules import AccessRules
from engine.access.service import AccessService, RulesHook, UnknownFeature
from engine.access.snapshot import load_snapshot, quota_window
from engine.access.thresholds import record_thresholds
from engine.access.view import AccessView

__all__ = [
    "NO_RULES",
    "AccessReaders",
    "AccessRules",
    "AccessService",
    "AccessView",
    "CustomerInputs",
    "Decision",
    "RuleAction",
    "RulesAnswer",
    "RulesHook",
    "Snapshot",
    "UnknownFeature",
    "combine",
    "load_snapshot",
    "plan_decision",
    "quota_window",
    "record_thresholds",
    "rule_context",
    "upgrade_offer",
]
