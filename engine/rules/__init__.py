"""The rules runtime: YAML rulesets -> JSON Schema check -> durable_rules rulesets.

    refs = References.from_catalogs([load_catalog("catalogs/saas.yaml")], "templates")
    ruleset = load_ruleset("rules/access.yaml", refs)      # DocumentError lists every problem
    runtime = RulesRuntime(clock)
    runtime.install(ruleset, version=1)
    decision = runtime.evaluate("access.check", context, log=db)
    decision.access(), decision.actions, decision.decision_id

See docs/rules.md.
"""

from __future__ import annotations

from engine.documents import Document, DocumentError, Problem
from engine.rules.compiler import CompiledRuleset, compile_ruleset
from engine.rules.conditions import ROOTS, evaluate, parse_condition
from engine.rules.decisions import KINDS as DECISION_KINDS
from engine.rules.decisions import (
    access_denial_row,
    customer_decisions,
    write_decision,
    write_decisions,
)
from engine.rules.durable_engine import DurableEngine, RulesEngineError
from engine.rules.lint import lint_paths
from engine.rules.loader import (
    References,
    load_ruleset,
    load_ruleset_text,
    ruleset_as_far_as_it_goes,
    ruleset_from_document,
    template_names,
)
from engine.rules.model import ACTIONS, Action, ActionSpec, Decision, Match, Rule, Ruleset
from engine.rules.promotions import (
    PRICE_EVENT,
    RulePromotions,
    discounts_from,
    price_context,
    pricing_runtime,
    promotions_for,
    quote_promotions,
    ruleset_texts,
    trace_of,
)
from engine.rules.runtime import RulesRuntime, ScheduledRule, reference_fired
from engine.rules.store import (
    PublishedRuleset,
    RulesError,
    decision_by_id,
    decisions_for,
    default_references,
    history_as_dicts,
    live_versions,
    publish_ruleset,
    rollback_ruleset,
    ruleset_history,
    ruleset_version,
    smoke_test,
    sync_runtime,
)
from engine.rules.vocabulary import (
    ACCESS_ACTIONS,
    AUTOMATION_ACTIONS,
    PRICING_ACTIONS,
    VOCABULARY,
    ActionKind,
    Effector,
)


def summarize_ruleset_document(doc: Document, refs: References | None = None) -> tuple[str, list[Problem]]:
    """For `billing validate`: a one-line summary of a valid ruleset, or its problems.
    Without `refs`, references are checked against ./catalogs and ./templates when present."""
    try:
        rs = ruleset_from_document(doc, refs if refs is not None else default_references())
    except DocumentError as exc:
        return "", exc.problems
    events = sorted(rs.events)
    scheduled = sum(1 for r in rs.rules if r.schedule)
    return (f"ruleset {rs.name}: {len(rs.rules)} rules on {len(events)} events"
            + (f", {scheduled} scheduled" if scheduled else "")), []


__all__ = [
    "ACCESS_ACTIONS",
    "ACTIONS",
    "AUTOMATION_ACTIONS",
    "DECISION_KINDS",
    "PRICE_EVENT",
    "PRICING_ACTIONS",
    "ROOTS",
    "VOCABULARY",
    "Action",
    "ActionKind",
    "ActionSpec",
    "CompiledRuleset",
    "Decision",
    "DurableEngine",
    "Effector",
    "Match",
    "PublishedRuleset",
    "References",
    "Rule",
    "RulePromotions",
    "RulesEngineError",
    "RulesError",
    "RulesRuntime",
    "Ruleset",
    "ScheduledRule",
    "access_denial_row",
    "compile_ruleset",
    "customer_decisions",
    "decision_by_id",
    "decisions_for",
    "default_references",
    "discounts_from",
    "evaluate",
    "history_as_dicts",
    "lint_paths",
    "live_versions",
    "load_ruleset",
    "load_ruleset_text",
    "parse_condition",
    "price_context",
    "pricing_runtime",
    "promotions_for",
    "publish_ruleset",
    "quote_promotions",
    "reference_fired",
    "rollback_ruleset",
    "ruleset_as_far_as_it_goes",
    "ruleset_from_document",
    "ruleset_history",
    "ruleset_texts",
    "ruleset_version",
    "smoke_test",
    "summarize_ruleset_document",
    "sync_runtime",
    "template_names",
    "trace_of",
    "write_decision",
    "write_decisions",
]
