"""The console's access tester: the decision the live API gives (plan, usage, dunning state and
the published access rules), with its explanation, but read-only: it publishes no
`access.denied`, announces no threshold and logs no decision.

It composes the same public functions `engine.access.AccessService` decides with
(load_snapshot, plan_decision, rule_context, combine) and a rules runtime brought to the
published versions, so a published ruleset changes its answer as it changes the API's.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.access import (
    AccessReaders,
    Decision,
    RuleAction,
    UnknownFeature,
    combine,
    load_snapshot,
    plan_decision,
    rule_context,
)
from engine.clock import Clock
from engine.rules import ACCESS_ACTIONS, RulesRuntime, sync_runtime
from engine.store import Database


@dataclass(frozen=True)
class Explained:
    """A decision with what it came from: the plan's own answer and the rules that matched."""

    decision: Decision
    plan_answer: Decision
    matched: list[dict[str, Any]] = field(default_factory=list)  # ruleset, rule, action, params
    rulesets: dict[str, int] = field(default_factory=dict)  # the published versions evaluated
    dunning_state: str = "active"

    def to_dict(self) -> dict[str, Any]:
        return self.decision.to_dict()

    def explanation(self) -> list[str]:
        d, base = self.decision, self.plan_answer
        lines = [f"The plan says: {'allowed' if base.allowed else 'denied'} ({base.reason})."]
        if d.limit is not None or d.used is not None:
            lines.append(f"Limit {_num(d.limit)}, used {_num(d.used)}, remaining {_num(d.remaining)}.")
        lines.append(f"Dunning state: {self.dunning_state}.")
        if not self.matched:
            lines.append(
                "No access rule matched"
                + (f" (rulesets {_versions(self.rulesets)})." if self.rulesets else "; no access ruleset is published.")
            )
        for m in self.matched:
            lines.append(
                f"Rule {m['ruleset']}/{m['rule']} asked to {m['action']}"
                + (f" ({m['params'].get('reason')})" if m["params"].get("reason") else "")
                + "."
            )
        lines.append(f"Decision: {'allowed' if d.allowed else 'denied'} ({d.reason}).")
        return lines


def _num(v: Decimal | None) -> str:
    return "—" if v is None else f"{v:,}"


def _versions(v: Mapping[str, int]) -> str:
    return ", ".join(f"{k} v{n}" for k, n in sorted(v.items()))


class AccessTester:
    """One per console process: the rules runtime is compiled once and swapped to newly
    published versions on each check (one grouped query when nothing changed)."""

    def __init__(self, db: Database, clock: Clock, readers: AccessReaders) -> None:
        self.db = db
        self.clock = clock
        self.readers = readers  # engine.system.access_readers(): what the API's checks read
        self.runtime = RulesRuntime(self.clock)
        self._lock = threading.Lock()

    def check(
        self, customer_id: str, feature: str, quantity: Decimal = Decimal(1), in_use: Decimal | None = None
    ) -> Explained:
        """Raises ValueError for a quantity not above zero, UnknownFeature for a feature the
        customer's catalog does not have (the API's 404)."""
        if quantity <= 0:
            raise ValueError("quantity: must be above zero")
        with self._lock:  # Streamlit runs sessions in threads; one sync at a time
            sync_runtime(self.runtime, self.db)
        now = self.clock.now()
        with self.db.read_session() as session:
            snapshot = load_snapshot(session, customer_id, now, self.readers)
        if snapshot.catalog is not None and feature not in snapshot.catalog.features:
            raise UnknownFeature(feature, list(snapshot.catalog.features))
        base = plan_decision(snapshot, feature, quantity, in_use)
        evaluated = self.runtime.evaluate("access.check", rule_context(snapshot, feature, quantity, base))
        actions = evaluated.actions_named(*ACCESS_ACTIONS)
        decision = combine(base, [RuleAction(a.ruleset, a.rule, a.name, a.params) for a in actions])
        matched = [{"ruleset": a.ruleset, "rule": a.rule, "action": a.name, "params": dict(a.params)} for a in actions]
        return Explained(decision, base, matched, self.runtime.versions(), snapshot.dunning_state)
