"""Scheduled rules acting on many subjects in one transaction.

A sweep's subjects are decided one by one, in rule order, each rule seeing what the previous
ones changed in its context, exactly as `ActionRunner` would; but the actions that a sweep
does in bulk (those with a `plan` in automation/vocabulary.py: the dunning state,
notifications, cancellations, and their ledger rows; automation/planners.py) are collected and
written together at the end, in a few statements, instead of a dozen round trips each; so
are cancellations (`sales.cancel_subscriptions`, `sales.mark_uncollectible_many`: one
invoice-number lock per batch, not one per subscription). Other actions (charge, emit, tag,
retry_payment: no `plan`) run on the spot through `ActionRunner.run_one`.

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

from engine import dunning, messaging, sales
from engine.automation.actions import ActionRunner, Cause, Outcome, insert_ledger
from engine.automation.planners import Cancel, Pending
from engine.automation.vocabulary import handling_of, ours
from engine.rules import RulesRuntime, ScheduledRule


def act_batch(session: Session, runtime: RulesRuntime, runner: ActionRunner, for_each: str,
              items: Sequence[tuple[str, dict[str, Any], Sequence[ScheduledRule]]],
              now: datetime, slot: str) -> dict[str, int]:
    """Decide and act for each (subject id, context, rules); the number of actions each
    subject's matching rules asked for (done, duplicate or skipped)."""
    pending = Pending()
    causes: dict[str, list[Cause]] = {}
    for subject_id, ctx, rules in items:
        for r in rules:  # in rule order; a rule sees what the previous one changed
            decision = runtime.evaluate_scheduled(r.ruleset, r.rule, ctx)
            if not decision.matches:
                continue
            cid = (ctx.get("customer") or {}).get("id")
            pending.decisions.append((decision, str(cid) if cid is not None else None))
            cause = Cause(f"{r.ruleset}/{r.rule}@{slot}:{for_each}:{subject_id}", None, now)
            causes.setdefault(subject_id, []).append(cause)
            for index, action in enumerate(decision.actions):
                if not ours(action):  # pricing and access read the others
                    continue
                plan = handling_of(action).plan
                if plan is None:
                    runner.run_one(index, action, ctx, cause)
                else:
                    plan(runner, pending, index, action, ctx, cause)
    _flush(session, runtime, runner, pending, now)
    return {sid: sum(len(c.outcomes) for c in cs) for sid, cs in causes.items()}


def _flush(session: Session, runtime: RulesRuntime, runner: ActionRunner, pending: Pending,
           now: datetime) -> None:
    runtime.log_many(session, pending.decisions)  # the decision log, in one INSERT
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
    for c in pending.cancels:
        if c.key not in fresh:
            # Done by an earlier run of this slot, yet the context (read now) said otherwise.
            raise RuntimeError(f"{c.rule}: cancel_subscription for {c.cause.key} was done before")
    _cancel_all(session, runner, pending.cancels)
    results = messaging.notify_many(session, [n for n, _, _ in pending.notes], now=now, renderer=runner.renderer)
    for (_request, cause, rule), result in zip(pending.notes, results, strict=True):
        cause.outcomes.append(Outcome("notify", rule, "done",
                                      ", ".join(f"{r.channel}:{r.status}" for r in result)))


def _cancel_all(session: Session, runner: ActionRunner, cancels: list[Cancel]) -> None:
    with_sub = [c for c in cancels if c.subscription_id is not None]
    results = sales.cancel_subscriptions(
        session, [sales.Cancellation(str(c.subscription_id), at=c.at) for c in with_sub], clock=runner.clock,
        promotions=runner.promotions)
    for c, result in zip(with_sub, results, strict=True):
        if (result.get("status"), result.get("ended_at")) != c.expected:
            raise RuntimeError(f"{c.rule}: subscription {c.subscription_id} is {result.get('status')} "
                               f"after cancel_subscription, not {c.expected[0]} as the context said")
    # The cancellations' credit may have closed an invoice (credited): nothing to write off.
    open_ids = [str(c.invoice_id) for c in cancels
                if c.invoice_id and sales.get_invoice(session, str(c.invoice_id))["status"] == "finalized"]
    sales.mark_uncollectible_many(session, open_ids, clock=runner.clock)
    for c in cancels:
        c.cause.outcomes.append(Outcome("cancel_subscription", c.rule, "done", c.detail))
