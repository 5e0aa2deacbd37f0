"""How a scheduler batch collects the actions it writes together (automation/batch.py):
each planner decides one action now, updates the context as it will be, and leaves what to
write in `Pending`; `batch._flush` writes it all at the end. Bound to their actions in
automation/vocabulary.py; the other actions run on the spot (automation/handlers.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine import dunning, messaging, sales
from engine.automation.context import LIVE_SUBSCRIPTIONS
from engine.automation.ledger import Cause, Outcome, ledger_row, rule_of
from engine.rules import Action, Decision

if TYPE_CHECKING:
    from engine.automation.actions import ActionRunner


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


@dataclass
class Pending:
    ledger: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, dunning.StateChange, Cause, str]] = field(default_factory=list)
    notes: list[tuple[messaging.NotifyRequest, Cause, str]] = field(default_factory=list)
    cancels: list[Cancel] = field(default_factory=list)
    decisions: list[tuple[Decision, str | None]] = field(default_factory=list)


def plan_notify(runner: ActionRunner, pending: Pending, index: int, action: Action,
                ctx: dict[str, Any], cause: Cause) -> None:
    rule = rule_of(action)
    params = dict(action.params)
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


def plan_dunning_state(runner: ActionRunner, pending: Pending, index: int, action: Action,
                       ctx: dict[str, Any], cause: Cause) -> None:
    rule = rule_of(action)
    cid = (ctx.get("customer") or {}).get("id")
    if not cid:
        cause.outcomes.append(Outcome(action.name, rule, "skipped", "the context names no customer"))
        return
    state = str(action.params["state"])
    row = ledger_row(cause, action, index, ctx, runner.now)
    pending.ledger.append(row)
    pending.states.append((row["key"], dunning.StateChange(str(cid), state, rule, cause.event_id),
                           cause, rule))
    # What the next rule sees; a duplicate (this slot ran before) left the same state.
    ctx["account"] = {**(ctx.get("account") or {}), "dunning_state": state, "state": state}


def plan_cancel(runner: ActionRunner, pending: Pending, index: int, action: Action,
                ctx: dict[str, Any], cause: Cause) -> None:
    """What `handlers.cancel_subscription` does, decided now and written in `batch._flush`."""
    row = ledger_row(cause, action, index, ctx, runner.now)
    pending.ledger.append(row)
    at = str(action.params.get("at") or "now")
    invoice = ctx.get("invoice") or {}
    sub = ctx.get("subscription") or {}
    sub_id = sub.get("id") or invoice.get("subscription_id")
    planned = Cancel(row["key"], cause, rule_of(action), at, None, None, (None, None), "nothing to cancel")
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
    pending.cancels.append(planned)
