"""Scheduled rules acting on many subjects in one transaction.

A sweep's subjects are decided one by one, in rule order, each rule seeing what the previous
ones changed in its context, exactly as `ActionRunner` would; but the actions that a sweep
does in bulk (`Collected` in automation/vocabulary.py: the dunning state,
notifications, cancellations, and their ledger rows; automation/planners.py) are collected and
written together at the end, in a few statements, instead of a dozen round trips each; so
are cancellations (`Effects.cancel_subscriptions` and `Effects.mark_uncollectible`, sales'
bulk calls: one invoice-number lock per batch, not one per subscription). Other actions (charge, emit, tag,
retry_payment: `OnTheSpot`) run on the spot; both through `ActionRunner.run`, as an event's.

An action written at the end changes the context at once, as it will be (what a later rule,
or a notification's text, reads); a cancellation that turns out otherwise fails the batch,
which is then retried one subject at a time.

Idempotency is the same as one at a time: the same ledger keys (cause, rule, action index)
and messaging's dedup keys, so a re-run slot or the one-at-a-time fallback never repeats
what a batch committed. The caller owns the transaction: one customer appears at most once
per batch (a customer's next subject goes in a later batch and sees this one's effects).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.automation.actions import ActionRunner, Cause
from engine.automation.planners import flush
from engine.rules import RulesRuntime, ScheduledRule


def act_batch(session: Session, runtime: RulesRuntime, runner: ActionRunner, for_each: str,
              items: Sequence[tuple[str, dict[str, Any], Sequence[ScheduledRule]]],
              now: datetime, slot: str) -> dict[str, int]:
    """Decide and act for each (subject id, context, rules) through `runner` (a batch's: its
    `Collected` actions wait in `runner.pending`); the number of actions each subject's
    matching rules asked for (done, duplicate or skipped)."""
    causes: dict[str, list[Cause]] = {}
    for subject_id, ctx, rules in items:
        for r in rules:  # in rule order; a rule sees what the previous one changed
            decision = runtime.evaluate_scheduled(r.ruleset, r.rule, ctx)
            if not decision.matches:
                continue
            cid = ctx["customer"].get("id")  # subject_contexts: a dict, empty without a customer
            runner.pending.decisions.append((decision, str(cid) if cid is not None else None))
            cause = Cause(f"{r.ruleset}/{r.rule}@{slot}:{for_each}:{subject_id}", None, now)
            causes.setdefault(subject_id, []).append(cause)
            runner.run(decision.actions, ctx, cause)
    runtime.log_many(session, runner.pending.decisions)  # the decision log, in one INSERT
    flush(session, runner, runner.pending, strict=True)
    return {sid: sum(len(c.outcomes) for c in cs) for sid, cs in causes.items()}
