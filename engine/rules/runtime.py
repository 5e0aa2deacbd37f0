"""The live rules runtime: the published version of each ruleset, compiled and registered,
answering "which rules hold for this event and context, and what do they ask for?".

    runtime = RulesRuntime(clock)
    runtime.install(load_ruleset("rules/access.yaml", refs), version=3)
    decision = runtime.evaluate("access.check", {"feature": "sso", "account": {...}})
    decision.access()        # "deny" | "allow" | None
    decision.actions         # [Action(name, params, ruleset, rule, version), ...]

Swapping a version in (`install`) never disturbs an evaluation in flight: each evaluation reads
one immutable snapshot, and the version it started with stays registered until it is done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.clock import Clock, SystemClock
from engine.rules.compiler import CompiledRuleset, compile_ruleset
from engine.rules.conditions import evaluate
from engine.rules.durable_engine import DurableEngine, Handle, default_engine
from engine.rules.model import Action, Decision, Match, Rule, Ruleset
from engine.store import Database, new_event_id


@dataclass(frozen=True)
class ScheduledRule:
    ruleset: str
    rule: str
    schedule: str
    for_each: str
    version: int


@dataclass(frozen=True)
class _Live:
    compiled: CompiledRuleset
    handle: Handle | None
    actions: tuple[tuple[Action, ...], ...]  # per compiled rule
    name: str
    version: int


def _live(compiled: CompiledRuleset, handle: Handle | None) -> _Live:
    actions = tuple(
        tuple(Action(a.name, a.params, compiled.name, r.id, compiled.version) for a in r.then)
        for r in compiled.rules
    )
    return _Live(compiled, handle, actions, compiled.name, compiled.version)


def reference_fired(compiled: CompiledRuleset, context: Mapping[str, Any], *, event: str | None,
                    scheduled: str | None, now: datetime) -> list[int]:
    """The pure-Python evaluator of a compiled ruleset: the same answer durable_rules gives."""
    fired = []
    for i, rule in enumerate(compiled.rules):
        if scheduled is not None:
            if rule.on or rule.id != scheduled:
                continue
        elif event not in rule.on:
            continue
        if not rule.active_at(now):
            continue
        if rule.when is None or evaluate(rule.when, context):
            fired.append(i)
    return fired


class RulesRuntime:
    """Thread-safe. `engine="durable"` (default) evaluates through durable_rules;
    `engine="python"` through the reference evaluator (the same answers, no C engine)."""

    def __init__(self, clock: Clock | None = None, *, engine: str = "durable",
                 durable: DurableEngine | None = None) -> None:
        if engine not in ("durable", "python"):
            raise ValueError("engine is 'durable' or 'python'")
        self.clock: Clock = clock or SystemClock()
        self.engine = engine
        self._durable = (durable or default_engine()) if engine == "durable" else None
        self._live: dict[str, _Live] = {}
        self._by_event: dict[str, tuple[_Live, ...]] = {}
        self._lock = threading.Lock()

    # -- versions ---------------------------------------------------------------------------
    def compile(self, ruleset: Ruleset, version: int = 0) -> _Live:
        compiled = compile_ruleset(ruleset, version)
        handle = self._durable.register(compiled) if self._durable is not None else None
        return _live(compiled, handle)

    def install(self, ruleset: Ruleset, version: int = 0) -> None:
        """Compile, register and swap in a version: evaluations that started before keep theirs."""
        self.install_many([(ruleset, version)])

    def install_many(self, items: Iterable[tuple[Ruleset, int]]) -> None:
        """Several rulesets swapped in at once (all compiled before any is live)."""
        ready = [self.compile(r, v) for r, v in items]
        with self._lock:
            live = dict(self._live)
            for item in ready:
                live[item.name] = item
            self._publish(live)

    def remove(self, name: str) -> None:
        with self._lock:
            live = dict(self._live)
            live.pop(name, None)
            self._publish(live)

    def _publish(self, live: dict[str, _Live]) -> None:
        by_event: dict[str, list[_Live]] = {}
        for item in sorted(live.values(), key=lambda x: x.name):
            for e in item.compiled.events:
                by_event.setdefault(e, []).append(item)
        self._live = live
        self._by_event = {e: tuple(v) for e, v in by_event.items()}

    def versions(self) -> dict[str, int]:
        return {name: item.version for name, item in self._live.items()}

    def ruleset(self, name: str) -> Ruleset:
        return self._live[name].compiled.ruleset

    def scheduled_rules(self) -> list[ScheduledRule]:
        out = []
        for item in self._live.values():
            for r in item.compiled.rules:
                if r.schedule and r.for_each:
                    out.append(ScheduledRule(item.name, r.id, r.schedule, r.for_each, item.version))
        return sorted(out, key=lambda s: (s.ruleset, s.rule))

    @property
    def registered(self) -> int:
        """durable rulesets registered in this process (memory that is never returned)."""
        return self._durable.registered if self._durable is not None else 0

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, event: str, context: Mapping[str, Any], *, rulesets: Iterable[str] | None = None,
                 log: Database | Session | None = None, event_id: str | None = None,
                 customer_id: str | None = None) -> Decision:
        """Every rule of the live rulesets that reacts to `event` and holds for `context`, in
        order (priority, then ruleset, then file order), with the actions they ask for."""
        targets = self._by_event.get(event, ())
        if rulesets is not None:
            wanted = set(rulesets)
            targets = tuple(t for t in targets if t.name in wanted)
        decision = self._run(targets, context, event=event, scheduled=None)
        if log is not None:
            decision = self.log(log, decision, context, event_id=event_id, customer_id=customer_id)
        return decision

    def evaluate_scheduled(self, ruleset: str, rule: str, context: Mapping[str, Any], *,
                           log: Database | Session | None = None, customer_id: str | None = None) -> Decision:
        """One scheduled rule for one subject (the scheduler calls this per `for_each` item)."""
        item = self._live.get(ruleset)
        if item is None or rule not in item.compiled.scheduled:
            raise KeyError(f"no live scheduled rule {ruleset}/{rule}")
        decision = self._run((item,), context, event=None, scheduled=rule)
        if log is not None:
            decision = self.log(log, decision, context, customer_id=customer_id)
        return decision

    def evaluate_many(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Decision]:
        """Many (event, context) pairs in one hand-off to the engine's owner thread."""
        now = self.clock.now()
        plans = []
        jobs: list[tuple[Handle, str]] = []
        for event, context in items:
            targets = self._by_event.get(event, ())
            parts = []
            for t in targets:
                body, inputs = t.compiled.fact(context, event=event, scheduled=None, now=now)
                parts.append((t, inputs, len(jobs)))
                if t.handle is not None:
                    jobs.append((t.handle, body))
            plans.append((event, context, parts))
        results = self._durable.evaluate_many(jobs) if self._durable is not None and jobs else []
        out = []
        for event, context, parts in plans:
            matches: list[tuple[Any, ...]] = []
            for t, inputs, k in parts:
                fired = results[k] if t.handle is not None else reference_fired(
                    t.compiled, context, event=event, scheduled=None, now=now)
                matches.extend(self._matches(t, fired, inputs))
            out.append(self._decision(event, now, matches, [p[0] for p in parts]))
        return out

    def _run(self, targets: Sequence[_Live], context: Mapping[str, Any], *, event: str | None,
             scheduled: str | None) -> Decision:
        now = self.clock.now()
        matches: list[tuple[Any, ...]] = []
        if self._durable is not None and targets:
            facts = [t.compiled.fact(context, event=event, scheduled=scheduled, now=now) for t in targets]
            assert all(t.handle is not None for t in targets)
            if len(targets) == 1:
                fired_all = [self._durable.evaluate(targets[0].handle, facts[0][0])]  # type: ignore[arg-type]
            else:
                fired_all = self._durable.evaluate_many(
                    [(t.handle, f[0]) for t, f in zip(targets, facts, strict=True)])  # type: ignore[misc]
            for t, (_, inputs), fired in zip(targets, facts, fired_all, strict=True):
                matches.extend(self._matches(t, fired, inputs))
        else:
            from engine.rules.conditions import lookup

            for t in targets:
                fired = reference_fired(t.compiled, context, event=event, scheduled=scheduled, now=now)
                inputs = {p: lookup(context, p) for i in fired for p in t.compiled.rule_paths[i]}
                matches.extend(self._matches(t, fired, inputs))
        return self._decision(event or f"schedule:{scheduled}", now, matches, targets)

    @staticmethod
    def _matches(t: _Live, fired: Iterable[int], inputs: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        out = []
        rules = t.compiled.rules
        paths = t.compiled.rule_paths
        for i in fired:
            rule: Rule = rules[i]
            m = Match(t.name, t.version, rule.id, rule.priority, t.actions[i], {p: inputs[p] for p in paths[i]})
            out.append((rule.priority, t.name, i, m))
        return out

    @staticmethod
    def _decision(event: str, now: datetime, matches: list[tuple[Any, ...]], targets: Iterable[_Live]) -> Decision:
        if len(matches) > 1:
            matches.sort(key=lambda x: x[:3])
        return Decision(event, now, tuple(x[3] for x in matches), {t.name: t.version for t in targets})

    # -- the decision log -------------------------------------------------------------------
    def log(self, where: Database | Session, decision: Decision, context: Mapping[str, Any], *,
            event_id: str | None = None, customer_id: str | None = None) -> Decision:
        """Write the decision to the decision log; returns it with its decision id."""
        from dataclasses import replace

        from engine.rules.models import DecisionRecord

        decision = replace(decision, decision_id=new_event_id("dec"))
        if customer_id is None:
            cust = context.get("customer")
            if isinstance(cust, Mapping) and cust.get("id") is not None:
                customer_id = str(cust["id"])
            elif context.get("customer_id") is not None:
                customer_id = str(context["customer_id"])
        row = DecisionRecord.from_decision(decision, event_id=event_id, customer_id=customer_id)
        if isinstance(where, Session):
            where.add(row)
        else:
            with where.session() as session:
                session.add(row)
        return decision
