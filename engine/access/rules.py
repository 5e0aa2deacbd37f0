"""What the published access rules say about a check (their allow/deny actions), and how long
that answer holds: the access service asks this on every check it cannot answer from memory."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.access.decision import RuleAction, RulesAnswer
from engine.clock import Clock
from engine.rules import RulesRuntime

ACCESS_EVENT = "access.check"


class AccessRules:
    """The access rules of one runtime (`RulesHook` of `AccessService`). Thread-safe: the
    validity edges are recomputed, as a whole, when the runtime's versions change."""

    def __init__(self, runtime: RulesRuntime, clock: Clock) -> None:
        self.runtime = runtime
        self.clock = clock
        # (rules versions, the sorted validity edges of their access rules), recomputed on a publish.
        self._windows: tuple[dict[str, int], list[datetime]] = ({"": -1}, [])

    def __call__(self, context: Mapping[str, Any]) -> RulesAnswer:
        """The allow/deny actions of the published access rules, and a writer for the decision
        log when a rule took part (the access service writes it with the check's other
        effects), so support can answer "why was this denied?"."""
        decision = self.runtime.evaluate(ACCESS_EVENT, context)
        actions = decision.actions_named("allow", "deny")
        stable_until = self.stable_until(self.clock.now())
        if not actions:
            return RulesAnswer(stable_until=stable_until)
        customer = context.get("customer") or {}

        def record(session: Any, decision_id: str) -> None:
            self.runtime.log(session, decision, context, customer_id=customer.get("id"), decision_id=decision_id)

        return RulesAnswer(
            tuple(RuleAction(a.ruleset, a.rule, a.name, a.params) for a in actions), record, stable_until
        )

    def stable_until(self, now: datetime) -> datetime | None:
        """The next instant an access rule starts or stops being valid (None: none ahead)."""
        versions = self.runtime.versions()
        if self._windows[0] != versions:
            found: set[datetime] = set()
            try:
                for name in versions:
                    for rule in self.runtime.ruleset(name).rules:
                        if ACCESS_EVENT in rule.on:
                            found.update(t for t in (rule.valid_from, rule.valid_until) if t is not None)
            except KeyError:  # a publish raced this read: hold the answer for no time at all
                return now
            self._windows = (versions, sorted(found))
        edges = self._windows[1]
        i = bisect.bisect_right(edges, now)
        return edges[i] if i < len(edges) else None
