"""Scheduled rules acting on many subjects in one transaction.

A sweep's subjects are decided one by one, in rule order, each rule seeing what the previous
ones changed in its context, exactly as `ActionRunner` would; but the actions that a sweep
does in bulk (the dunning state, notifications, and their ledger rows) are collected and
written together at the end, in a few statements, instead of a dozen round trips each.
Other actions (cancel, charge, emit, tag, retry_payment) run on the spot through
`ActionRunner.run_one`, in their savepoints.

Idempotency is the same as one at a time: the same ledger keys (cause, rule, action index)
and messaging's dedup keys, so a re-run slot or the one-at-a-time fallback never repeats
what a batch committed. The caller owns the transaction: one customer appears at most once
per batch (a customer's next subject goes in a later batch and sees this one's effects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine import dunning, messaging
from engine.automation.actions import NOT_OURS, ActionRunner, Cause, Outcome, insert_ledger, ledger_row
from engine.rules import Action, RulesRuntime, ScheduledRule

# What `act_batch` collects and writes together; the others run on the spot.
BULK_ACTIONS = frozenset({"notify", "set_dunning_state"})


@dataclass
class _Pending:
    ledger: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, dunning.StateChange, Cause, str]] = field(default_factory=list)
    notes: list[tuple[messaging.NotifyRequest, Cause, str]] = field(default_factory=list)


def act_batch(session: Session, runtime: RulesRuntime, runner: ActionRunner, for_each: str,
              items: Sequence[tuple[str, dict[str, Any], Sequence[ScheduledRule]]],
              now: datetime, slot: str) -> dict[str, int]:
    """Decide and act for each (subject id, context, rules); the number of actions each
    subject's matching rules asked for (done, duplicate or skipped)."""
    pending = _Pending()
    causes: dict[str, list[Cause]] = {}
    for subject_id, ctx, rules in items:
        for r in rules:  # in rule order; a rule sees what the previous one changed
            decision = runtime.evaluate_scheduled(r.ruleset, r.rule, ctx)
            if not decision.matches:
                continue
            cid = (ctx.get("customer") or {}).get("id")
            runtime.log(session, decision, ctx, customer_id=cid)
            cause = Cause(f"{r.ruleset}/{r.rule}@{slot}:{for_each}:{subject_id}", None, now)
            causes.setdefault(subject_id, []).append(cause)
            for index, action in enumerate(decision.actions):
                if action.name not in NOT_OURS:
                    _plan(runner, pending, index, action, ctx, cause)
    _flush(session, pending, now)
    return {sid: sum(len(c.outcomes) for c in cs) for sid, cs in causes.items()}


def _plan(runner: ActionRunner, pending: _Pending, index: int, action: Action,
          ctx: dict[str, Any], cause: Cause) -> None:
    rule = f"{action.ruleset}/{action.rule}"
    params = dict(action.params)
    if action.name == "notify":
        customer = dict(ctx.get("customer") or {})
        channels = list(params.get("channels") or ["email"])
        unknown = [c for c in channels if c not in messaging.CHANNELS]
        if not customer.get("id") or unknown:
            why = f"unknown channel(s) {unknown}" if unknown else "the context names no customer"
            cause.outcomes.append(Outcome(action.name, rule, "skipped", f"notify: {why}"))
            return
        template = str(params["template"])
        data = runner.template_data(template, ctx, dict(params.get("data") or {}))
        pending.notes.append((messaging.NotifyRequest(
            customer=customer, template=template, channels=channels, data=data,
            event_id=cause.key[:200], rule_id=rule), cause, rule))
        return
    if action.name == "set_dunning_state":
        cid = (ctx.get("customer") or {}).get("id")
        if not cid:
            cause.outcomes.append(Outcome(action.name, rule, "skipped", "the context names no customer"))
            return
        state = str(params["state"])
        row = ledger_row(cause, action, index, ctx, runner.now)
        pending.ledger.append(row)
        pending.states.append((row["key"], dunning.StateChange(str(cid), state, rule, cause.event_id),
                               cause, rule))
        # What the next rule sees; a duplicate (this slot ran before) left the same state.
        ctx["account"] = {**(ctx.get("account") or {}), "dunning_state": state, "state": state}
        return
    runner.run_one(index, action, ctx, cause)


def _flush(session: Session, pending: _Pending, now: datetime) -> None:
    fresh = insert_ledger(session, pending.ledger)
    changes = []
    for key, change, cause, rule in pending.states:
        if key in fresh:
            changes.append((change, cause, rule))
        else:
            cause.outcomes.append(Outcome("set_dunning_state", rule, "duplicate"))
    flags = dunning.set_states(session, [c for c, _, _ in changes], now=now)
    for (_change, cause, rule), changed in zip(changes, flags, strict=True):
        cause.outcomes.append(Outcome("set_dunning_state", rule, "done",
                                      "changed" if changed else "unchanged"))
    results = messaging.notify_many(session, [n for n, _, _ in pending.notes], now=now)
    for (_request, cause, rule), result in zip(pending.notes, results, strict=True):
        cause.outcomes.append(Outcome("notify", rule, "done",
                                      ", ".join(f"{r.channel}:{r.status}" for r in result)))
