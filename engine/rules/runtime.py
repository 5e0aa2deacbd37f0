"""The live rules runtime: the published version of each ruleset, compiled and registered,
answering "which rules hold for this event and context, and what do they ask for?".

    runtime = RulesRuntime(clock)
    runtime.install(load_ruleset("rules/access.yaml", refs), version=3)
    decision = runtime.evaluate("access.check", {"feature": "sso", "account": {...}})
    decision.access()        # "deny" | "allow" | None
    decision.actions         # [Action(name, params, ruleset, rule, version), ...]

Swapping a version in (`install`) never disturbs an evaluation in flight: each evaluation reads
one immutable snapshot. The replaced version is retired at once (its durable memory returned,
see durable_engine); an evaluation that reaches it afterwards has not posted anything yet and
starts over on the new snapshot, so every decision is made by exactly one version of each
ruleset and none fails.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.rules.compiler import CompiledRuleset, compile_ruleset, fact_head
from engine.rules.conditions import evaluate, lookup
from engine.rules.durable_engine import DurableEngine, Handle, RetiredHandle
from engine.rules.model import Action, Decision, Match, Ruleset
from engine.store import Database, new_event_id


@dataclass(frozen=True)
class ScheduledRule:
    ruleset: str
    rule: str
    schedule: str
    for_each: str
    version: int


_NO_INPUTS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class _Live:
    compiled: CompiledRuleset
    handle: Handle | None
    actions: tuple[tuple[Action, ...], ...]  # per compiled rule
    name: str
    version: int
    # per compiled rule: its Match when the rule reads no path (the same every time), else None
    constant: tuple[Match | None, ...]
    order: tuple[tuple[int, str, int], ...]  # per compiled rule: its place in a decision


def _live(compiled: CompiledRuleset, handle: Handle | None) -> _Live:
    actions = tuple(
        tuple(Action(a.name, a.params, compiled.name, r.id, compiled.version) for a in r.then) for r in compiled.rules
    )
    constant = tuple(
        None
        if compiled.rule_paths[i]
        else Match(compiled.name, compiled.version, r.id, r.priority, actions[i], _NO_INPUTS)
        for i, r in enumerate(compiled.rules)
    )
    order = tuple((r.priority, compiled.name, i) for i, r in enumerate(compiled.rules))
    return _Live(compiled, handle, actions, compiled.name, compiled.version, constant, order)


def _ordered(matches: list[Match], keys: list[tuple[int, str, int]]) -> tuple[Match, ...]:
    """Matches by priority, then ruleset, then file order."""
    if len(matches) < 2:
        return tuple(matches)
    return tuple(m for _, m in sorted(zip(keys, matches, strict=True), key=lambda x: x[0]))


@dataclass(frozen=True)
class _Route:
    """What one event consults: the live rulesets and their versions (shared, read-only)."""

    targets: tuple[_Live, ...]
    versions: Mapping[str, int]


_NOWHERE = _Route((), _NO_INPUTS)


def reference_fired(
    compiled: CompiledRuleset, context: Mapping[str, Any], *, event: str | None, scheduled: str | None, now: datetime
) -> list[int]:
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

    def __init__(
        self, clock: Clock, *, engine: str = "durable", durable: DurableEngine | None = None, reclaim: bool = True
    ) -> None:
        """`reclaim=False` keeps replaced versions registered in durable_rules, as durable's
        own Host does (memory grows with every publish; for measurements)."""
        if engine not in ("durable", "python"):
            raise ValueError("engine is 'durable' or 'python'")
        self.clock: Clock = clock  # rule windows (valid_from/valid_until) follow it, never the wall clock
        self.engine = engine
        self.reclaim = reclaim
        # Its own durable_rules engine unless given one (a system hands its runtime the system's).
        self._durable = (durable or DurableEngine()) if engine == "durable" else None
        self._live: dict[str, _Live] = {}
        self._by_event: dict[str, _Route] = {}
        self._lock = threading.Lock()

    @property
    def durable(self) -> DurableEngine | None:
        """The durable_rules engine this runtime registers its versions in (None: python)."""
        return self._durable

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
            replaced = [live[item.name] for item in ready if item.name in live]
            for item in ready:
                live[item.name] = item
            self._publish(live)
            self._retire(replaced)

    def remove(self, name: str) -> None:
        with self._lock:
            live = dict(self._live)
            gone = live.pop(name, None)
            self._publish(live)
            self._retire([gone] if gone is not None else [])

    def close(self) -> None:
        """Take every ruleset out and return their durable memory (the runtime stays usable)."""
        with self._lock:
            gone = list(self._live.values())
            self._publish({})
            self._retire(gone)

    def _publish(self, live: dict[str, _Live]) -> None:
        by_event: dict[str, list[_Live]] = {}
        for item in sorted(live.values(), key=lambda x: x.name):
            for e in item.compiled.events:
                by_event.setdefault(e, []).append(item)
        self._live = live
        self._by_event = {
            e: _Route(tuple(v), MappingProxyType({t.name: t.version for t in v})) for e, v in by_event.items()
        }

    def _retire(self, items: Iterable[_Live]) -> None:
        """After the swap: evaluations that still hold these start over (RetiredHandle)."""
        if self._durable is None or not self.reclaim:
            return
        for item in items:
            if item.handle is not None:
                self._durable.retire(item.handle)

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
        """Live durable rulesets in this runtime's engine (shared by every runtime on it)."""
        return self._durable.registered if self._durable is not None else 0

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(
        self,
        event: str,
        context: Mapping[str, Any],
        *,
        rulesets: Iterable[str] | None = None,
        log: Database | Session | None = None,
        event_id: str | None = None,
        customer_id: str | None = None,
        at: datetime | None = None,
    ) -> Decision:
        """Every rule of the live rulesets that reacts to `event` and holds for `context`, in
        order (priority, then ruleset, then file order), with the actions they ask for.
        `at`: the time rules are valid at (`valid_from`/`valid_until`); the clock's by default."""
        wanted = set(rulesets) if rulesets is not None else None  # once: a retry reads it again
        while True:
            route = self._by_event.get(event, _NOWHERE)
            if wanted is not None:
                targets = tuple(t for t in route.targets if t.name in wanted)
                route = _Route(targets, MappingProxyType({t.name: t.version for t in targets}))
            try:
                decision = self._run(route, context, event=event, scheduled=None, now=at)
                break
            except RetiredHandle:
                continue  # swapped while we waited: decide on the new snapshot
        if log is not None:
            decision = self.log(log, decision, context, event_id=event_id, customer_id=customer_id)
        return decision

    def evaluate_scheduled(
        self,
        ruleset: str,
        rule: str,
        context: Mapping[str, Any],
        *,
        log: Database | Session | None = None,
        customer_id: str | None = None,
    ) -> Decision:
        """One scheduled rule for one subject (the scheduler calls this per `for_each` item)."""
        while True:
            item = self._live.get(ruleset)
            if item is None or rule not in item.compiled.scheduled:
                raise KeyError(f"no live scheduled rule {ruleset}/{rule}")
            try:
                decision = self._run(
                    _Route((item,), MappingProxyType({item.name: item.version})), context, event=None, scheduled=rule
                )
                break
            except RetiredHandle:
                continue
        if log is not None:
            decision = self.log(log, decision, context, customer_id=customer_id)
        return decision

    def evaluate_many(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Decision]:
        """Many (event, context) pairs in one hand-off to the engine's owner (one clock reading)."""
        now = self.clock.now()
        while True:
            plans, jobs = self._batch(items, now)
            try:
                results = self._durable.evaluate_many(jobs) if self._durable is not None and jobs else []
                break
            except RetiredHandle:
                continue  # a version was swapped meanwhile: build the batch on the new snapshot
        fired_by_durable = iter(results)
        out = []
        for event, context, route, parts in plans:
            matches: list[Match] = []
            keys: list[tuple[int, str, int]] = []
            for t, values in parts:
                if t.handle is not None:
                    fired = next(fired_by_durable)
                else:
                    fired = reference_fired(t.compiled, context, event=event, scheduled=None, now=now)
                if fired:
                    self._matches(matches, keys, t, fired, values)
            out.append(Decision(event, now, _ordered(matches, keys), route.versions))
        return out

    def _batch(
        self, items: Sequence[tuple[str, Mapping[str, Any]]], now: datetime
    ) -> tuple[list[tuple[str, Mapping[str, Any], _Route, list[tuple[_Live, list[Any]]]]], list[tuple[Handle, str]]]:
        """Each item's route and facts on the current snapshot, and the engine's jobs in order."""
        plans = []
        jobs: list[tuple[Handle, str]] = []
        for event, context in items:
            route = self._by_event.get(event, _NOWHERE)
            head = fact_head(now, event, None)
            parts = []
            for t in route.targets:
                body, values = t.compiled.body(context, head)
                parts.append((t, values))
                if t.handle is not None:
                    jobs.append((t.handle, body))
            plans.append((event, context, route, parts))
        return plans, jobs

    def _run(
        self,
        route: _Route,
        context: Mapping[str, Any],
        *,
        event: str | None,
        scheduled: str | None,
        now: datetime | None = None,
    ) -> Decision:
        if now is None:
            now = self.clock.now()
        matches: list[Match] = []
        keys: list[tuple[int, str, int]] = []
        durable = self._durable
        if durable is not None:
            head = fact_head(now, event, scheduled)
            for t in route.targets:
                body, values = t.compiled.body(context, head)
                fired = durable.evaluate(t.handle, body)  # type: ignore[arg-type]
                if fired:
                    self._matches(matches, keys, t, fired, values)
        else:
            for t in route.targets:
                fired = reference_fired(t.compiled, context, event=event, scheduled=scheduled, now=now)
                if fired:
                    self._matches(matches, keys, t, fired, [lookup(context, s.path) for s in t.compiled.slots])
        return Decision(event or f"schedule:{scheduled}", now, _ordered(matches, keys), route.versions)

    @staticmethod
    def _matches(
        out: list[Match], keys: list[tuple[int, str, int]], t: _Live, fired: Iterable[int], values: Sequence[Any]
    ) -> None:
        slots = t.compiled.rule_slots
        for i in fired:
            m = t.constant[i]
            if m is None:
                rule = t.compiled.rules[i]
                m = Match(t.name, t.version, rule.id, rule.priority, t.actions[i], {p: values[k] for p, k in slots[i]})
            out.append(m)
            keys.append(t.order[i])

    # -- the decision log -------------------------------------------------------------------
    def log(
        self,
        where: Database | Session,
        decision: Decision,
        context: Mapping[str, Any],
        *,
        event_id: str | None = None,
        customer_id: str | None = None,
        decision_id: str | None = None,
    ) -> Decision:
        """Write the decision to the decision log; returns it with its decision id. With
        `decision_id` (an access check's, memoised and logged again at each use) the rows
        carry that id (engine.rules.decisions.write_decision) and the feature asked about."""
        from dataclasses import replace

        from engine.rules.decisions import write_decision
        from engine.rules.models import DecisionRecord

        if decision_id is not None and isinstance(where, Session):
            decision = replace(decision, decision_id=decision_id)
            values = DecisionRecord.row(decision, event_id=event_id, customer_id=customer_id)
            values["inputs"]["check"] = {"feature": context.get("feature"), "quantity": str(context.get("quantity"))}
            write_decision(where, values)
            return decision
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

    def log_many(self, session: Session, decisions: Sequence[tuple[Decision, str | None]]) -> list[Decision]:
        """`log` for many (decision, customer id) in one INSERT (a scheduler sweep's batch)."""
        from dataclasses import replace

        from sqlalchemy import insert

        from engine.rules.models import DecisionRecord

        logged = [replace(d, decision_id=new_event_id("dec")) for d, _ in decisions]
        rows = [
            DecisionRecord.row(d, event_id=None, customer_id=cid) for d, (_, cid) in zip(logged, decisions, strict=True)
        ]
        if rows:
            session.execute(insert(DecisionRecord), rows)
        return logged
