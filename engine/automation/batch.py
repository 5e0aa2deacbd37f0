"""Scheduled rules acting on many subjects in one transaction.

A sweep's subjects are decided one by one, in rule order, each rule seeing what the previous
ones changed in its context, exactly as `ActionRunner` would; but the actions that a sweep
does in bulk (the dunning state, notifications, and their ledger rows) are collected and
written together at the end, in a few statements, instead of a dozen round trips each; so
are cancellations (`sales.cancel_subscriptions`, `sales.mark_uncollectible_many`: one
invoice-number lock per batch, not one per subscription). Other actions (charge, emit, tag,
retry_payment) run on the spot through `ActionRunner.run_one`.

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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine import dunning, messaging, sales
from engine.automation.actions import NOT_OURS, ActionRunner, Cause, Outcome, insert_ledger, ledger_row
from engine.automation.context import LIVE_SUBSCRIPTIONS
from engine.rules import Action, Decision, RulesRuntime, ScheduledRule

# What `act_batch` collects and writes together; the others run on the spot.
BULK_ACTIONS = frozenset({"notify", "set_dunning_state", "cancel_subscription"})


@dataclass
class _Cancel:
    """A planned cancel_subscription: what it cancels and what the context now says."""

    key: str
    cause: Cause
    rule: str
    at: str
    subscription_id: str | None
    invoice_id: str | None
    expected: tuple[Any, Any]  # the subscription's (status, ended_at) after it
    detail: str


@dataclass
class _Pending:
    ledger: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, dunning.StateChange, Cause, str]] = field(default_factory=list)
    notes: list[tuple[messaging.NotifyRequest, Cause, str]] = field(default_factory=list)
    cancels: list[_Cancel] = field(default_factory=list)
    decisions: list[tuple[Decision, str | None]] = field(default_factory=list)


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
            pending.decisions.append((decision, str(cid) if cid is not None else None))
            cause = Cause(f"{r.ruleset}/{r.rule}@{slot}:{for_each}:{subject_id}", None, now)
            causes.setdefault(subject_id, []).append(cause)
            for index, action in enumerate(decision.actions):
                if action.name not in NOT_OURS:
                    _plan(runner, pending, index, action, ctx, cause)
    _flush(session, runtime, runner, pending, now)
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
    if action.name == "cancel_subscription":
        row = ledger_row(cause, action, index, ctx, runner.now)
        pending.ledger.append(row)
        pending.cancels.append(_plan_cancel(runner, row["key"], cause, rule, params, ctx))
        return
    runner.run_one(index, action, ctx, cause)


def _plan_cancel(runner: ActionRunner, key: str, cause: Cause, rule: str, params: dict[str, Any],
                 ctx: dict[str, Any]) -> _Cancel:
    """What `ActionRunner._cancel_subscription` does, decided now and written in `_flush`."""
    at = str(params.get("at") or "now")
    invoice = ctx.get("invoice") or {}
    sub = ctx.get("subscription") or {}
    sub_id = sub.get("id") or invoice.get("subscription_id")
    planned = _Cancel(key, cause, rule, at, None, None, (None, None), "nothing to cancel")
    done = []
    if sub_id:
        # Read in this transaction (the batch's contexts) unless the context lacks it.
        current = sub if sub.get("id") == sub_id else sales.get_subscription(runner.session, str(sub_id))
        if current.get("status") in LIVE_SUBSCRIPTIONS:
            ends_now = at == "now" or current.get("status") != "active"
            status = "canceled" if ends_now else current.get("status")
            ended_at = runner.now.isoformat() if ends_now else current.get("ended_at")
            planned.subscription_id, planned.expected = str(sub_id), (status, ended_at)
            ctx["subscription"] = {**sub, "status": status, "ended_at": ended_at, "reason": "unpaid"}
            done.append(f"subscription {sub_id} cancelled ({at})")
    if invoice.get("id") and invoice.get("state") == "finalized":
        planned.invoice_id = str(invoice["id"])
        ctx["invoice"] = {**invoice, "state": "uncollectible", "status": "uncollectible"}
        done.append(f"invoice {invoice['id']} uncollectible")
    planned.detail = "; ".join(done) or planned.detail
    return planned


def _flush(session: Session, runtime: RulesRuntime, runner: ActionRunner, pending: _Pending,
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


def _cancel_all(session: Session, runner: ActionRunner, cancels: list[_Cancel]) -> None:
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
