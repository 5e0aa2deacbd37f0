"""The actions written in bulk: each planner decides one action now, updates the context as
it will be, and leaves what to write in `Pending`; `flush` writes it all in a few statements.
A scheduler batch (automation/batch.py) plans every subject's actions and flushes once; an
event's action is the same with one (`Runner`): one way to do each, one or many.
Bound to their actions in automation/vocabulary.py; the other actions run on the spot
(automation/handlers.py). The effects are the owners' (`ports.Effects`, bound by engine.system)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.automation.context import LIVE_SUBSCRIPTIONS, context_customer_id
from engine.automation.ledger import Cause, Outcome, insert_ledger, ledger_row, rule_of
from engine.automation.ports import Effects, Note, Runner, StateChange
from engine.rules import Action, Decision


@dataclass
class Cancel:
    """A planned cancel_subscription: what it cancels and what the context now says."""

    key: str
    cause: Cause
    rule: str
    at: str
    subscription_id: str | None
    invoice_id: str | None
    expected: tuple[Any, Any]  # the subscription's (status, ended_at) after it
    detail: str


# A planned notify action: the message, its cause (its outcome goes there) and its rule.
PlannedNote = tuple[Note, Cause, str]


@dataclass
class Pending:
    ledger: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, StateChange, Cause, str]] = field(default_factory=list)
    notes: list[PlannedNote] = field(default_factory=list)
    cancels: list[Cancel] = field(default_factory=list)
    decisions: list[tuple[Decision, str | None]] = field(default_factory=list)


def plan_notify(
    runner: Runner, pending: Pending, index: int, action: Action, ctx: dict[str, Any], cause: Cause
) -> None:
    rule = rule_of(action)
    params = dict(action.params)
    customer = dict(ctx.get("customer", {}))
    effects = runner.owners.effects
    channels = list(params.get("channels", ["email"]))  # the schema: a non-empty list when given
    unknown = [c for c in channels if c not in effects.channels]
    if not customer.get("id") or unknown:
        why = f"unknown channel(s) {unknown}" if unknown else "the context names no customer"
        cause.outcomes.append(Outcome(action.name, rule, "skipped", f"notify: {why}"))
        return
    template = str(params["template"])
    data = runner.template_data(template, ctx, dict(params.get("data", {})))
    invoice_id = ctx.get("invoice", {}).get("id")
    # An invoice's email carries its PDF (engine.pdf, drawn when the email is sent).
    attachments = (
        ({"kind": "invoice_pdf", "id": str(invoice_id)},)
        if invoice_id and effects.is_invoice_template(template)
        else ()
    )
    pending.notes.append(
        (
            Note(
                customer=customer,
                template=template,
                channels=channels,
                data=data,
                event_id=cause.key[:200],
                rule_id=rule,
                attachments=attachments,
            ),
            cause,
            rule,
        )
    )


def plan_dunning_state(
    runner: Runner, pending: Pending, index: int, action: Action, ctx: dict[str, Any], cause: Cause
) -> None:
    rule = rule_of(action)
    cid = context_customer_id(ctx)
    if not cid:
        cause.outcomes.append(Outcome(action.name, rule, "skipped", "the context names no customer"))
        return
    state = str(action.params["state"])
    row = ledger_row(cause, action, index, ctx, runner.now)
    pending.ledger.append(row)
    pending.states.append((row["key"], StateChange(cid, state, rule, cause.event_id), cause, rule))
    # What the next rule sees; a duplicate (this slot ran before) left the same state.
    ctx["account"] = {**ctx.get("account", {}), "dunning_state": state, "state": state}


def plan_cancel(
    runner: Runner, pending: Pending, index: int, action: Action, ctx: dict[str, Any], cause: Cause
) -> None:
    """What `handlers.cancel_subscription` does, decided now and written in `batch._flush`."""
    row = ledger_row(cause, action, index, ctx, runner.now)
    pending.ledger.append(row)
    at = str(action.params.get("at", "now"))
    invoice = ctx.get("invoice", {})
    sub = ctx.get("subscription", {})
    sub_id = sub.get("id") or invoice.get("subscription_id")
    planned = Cancel(row["key"], cause, rule_of(action), at, None, None, (None, None), "nothing to cancel")
    done = [_plan_subscription_end(runner, planned, ctx, sub, str(sub_id))] if sub_id else []
    if invoice.get("id") and invoice.get("state") == "finalized":
        planned.invoice_id = str(invoice["id"])
        ctx["invoice"] = {**invoice, "state": "uncollectible", "status": "uncollectible"}
        done.append(f"invoice {invoice['id']} uncollectible")
    planned.detail = "; ".join(d for d in done if d) or planned.detail
    pending.cancels.append(planned)


def _plan_subscription_end(
    runner: Runner, planned: Cancel, ctx: dict[str, Any], sub: Mapping[str, Any], sub_id: str
) -> str:
    """The subscription's end, if it is live: what the context now says, and the outcome's
    detail ("": not live, nothing to end)."""
    # A batch read the subscription in this transaction already; an event's context may be older.
    current = (
        sub if runner.batch and sub.get("id") == sub_id else runner.owners.records.subscription(runner.session, sub_id)
    )
    if current is None:
        raise ValueError(f"subscription_id: unknown subscription {sub_id!r}")
    if current.get("status") not in LIVE_SUBSCRIPTIONS:
        return ""
    ends_now = planned.at == "now" or current.get("status") != "active"
    status = "canceled" if ends_now else current.get("status")
    ended_at = runner.now.isoformat() if ends_now else current.get("ended_at")
    planned.subscription_id, planned.expected = sub_id, (status, ended_at)
    ctx["subscription"] = {**sub, "status": status, "ended_at": ended_at, "reason": "unpaid"}
    return f"subscription {sub_id} cancelled ({planned.at})"


def flush(session: Session, runner: Runner, pending: Pending, *, strict: bool) -> None:
    """Write what was planned, in a few statements, and record each action's outcome.
    `strict` (a scheduler batch): a cancellation the ledger says was done before raises, as
    the batch's context (read in this transaction) said otherwise; one action of an event
    (not strict) is then a duplicate, as any action the ledger has seen."""
    now = runner.now
    fresh = insert_ledger(session, pending.ledger)
    effects = runner.owners.effects
    changes = [
        (change, cause, rule)
        for key, change, cause, rule in pending.states
        if _fresh(key, fresh, cause, "set_dunning_state", rule, strict=False)
    ]
    flags = effects.set_states(session, [c for c, _, _ in changes], now)
    for (_change, cause, rule), changed in zip(changes, flags, strict=True):
        cause.outcomes.append(Outcome("set_dunning_state", rule, "done", "changed" if changed else "unchanged"))
    cancels = [
        c for c in pending.cancels if _fresh(c.key, fresh, c.cause, "cancel_subscription", c.rule, strict=strict)
    ]
    _cancel_all(session, runner, cancels)
    flush_notes(session, effects, pending.notes, now)


def flush_notes(session: Session, effects: Effects, notes: Sequence[PlannedNote], now: datetime) -> None:
    """Write the planned messages in one call to their owner (messaging.notify_many), in
    their order, and record each notify action's outcome: how each channel went."""
    results = effects.notify_many(session, [n for n, _, _ in notes], now)
    for (_request, cause, rule), result in zip(notes, results, strict=True):
        cause.outcomes.append(Outcome("notify", rule, "done", ", ".join(f"{r.channel}:{r.status}" for r in result)))


def _fresh(key: str, fresh: set[str], cause: Cause, action: str, rule: str, *, strict: bool) -> bool:
    """Whether the ledger took the action's row now; if not, it is a duplicate, or with
    `strict` (a cancellation in a batch) an error: done by an earlier run of this slot, yet
    the context (read now) said otherwise."""
    if key in fresh:
        return True
    if strict:
        raise RuntimeError(f"{rule}: {action} for {cause.key} was done before")
    cause.outcomes.append(Outcome(action, rule, "duplicate"))
    return False


def _cancel_all(session: Session, runner: Runner, cancels: list[Cancel]) -> None:
    effects, records = runner.owners.effects, runner.owners.records
    with_sub = [c for c in cancels if c.subscription_id is not None]
    results = effects.cancel_subscriptions(session, [(str(c.subscription_id), c.at) for c in with_sub], runner.now)
    for c, result in zip(with_sub, results, strict=True):
        if (result.get("status"), result.get("ended_at")) != c.expected:
            raise RuntimeError(
                f"{c.rule}: subscription {c.subscription_id} is {result.get('status')} "
                f"after cancel_subscription, not {c.expected[0]} as the context said"
            )
    # The cancellations' credit may have closed an invoice (credited): nothing to write off.
    open_ids = [
        c.invoice_id
        for c in cancels
        if c.invoice_id and (records.invoice(session, c.invoice_id) or {}).get("status") == "finalized"
    ]
    effects.mark_uncollectible(session, open_ids, runner.now)
    for c in cancels:
        c.cause.outcomes.append(Outcome("cancel_subscription", c.rule, "done", c.detail))
