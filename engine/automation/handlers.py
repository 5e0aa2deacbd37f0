"""The actions automation carries out on the spot, one context at a time, in an event's
path and in a scheduler batch alike (notify, set_dunning_state and cancel_subscription are
written in bulk in both: automation/planners.py). Each takes the
runner (session, time, the owners' records and effects, seller and links), the action, its params
and the context (which it updates, for the next rule to see) and returns the outcome's detail.
Bound to their actions in automation/vocabulary.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.automation.charges import create_charge
from engine.automation.context import context_customer_id
from engine.automation.ledger import Cause, insert_ignore, rule_of, short_id
from engine.automation.models import PENDING, ScheduledJob
from engine.automation.ports import Runner
from engine.automation.templating import plain
from engine.durations import parse_duration
from engine.rules import Action
from engine.store import add_event


def customer_id(ctx: Mapping[str, Any]) -> str:
    cid = context_customer_id(ctx)
    if not cid:
        raise ValueError("the context names no customer")
    return cid


def retry_payment(runner: Runner, action: Action, params: dict[str, Any],
                  ctx: dict[str, Any], cause: Cause) -> str:
    invoice = ctx.get("invoice", {})
    invoice_id = invoice.get("id")
    if not invoice_id:
        raise ValueError("retry_payment: the context has no invoice")
    if invoice.get("state") not in (None, "finalized"):
        # Closed meanwhile (paid, credited by a cancellation, written off): nothing to collect.
        return f"no retry: the invoice is {invoice.get('state')}"
    due = parse_duration(str(params["after"])).after(cause.time)  # required by the ruleset schema
    attempt = invoice.get("attempt")
    key = f"payment_retry:{invoice_id}:{attempt}" if attempt is not None \
        else f"payment_retry:{invoice_id}:{cause.key}"
    fresh = insert_ignore(runner.session, ScheduledJob, {
        "key": key[:200], "kind": "payment_retry", "customer_id": invoice.get("customer_id"),
        "due_at": due, "payload": {"invoice_id": invoice_id, "after_attempt": attempt},
        "status": PENDING, "attempts": 0, "rule": rule_of(action), "created_at": runner.now})
    note = ""
    if not fresh:
        existing = runner.session.get(ScheduledJob, key[:200])
        due = existing.due_at if existing is not None else due
        note = " (already scheduled)"
    ctx["_next_attempt"] = due
    return f"retry at {due.isoformat()}{note}"


def charge(runner: Runner, action: Action, params: dict[str, Any], ctx: dict[str, Any],
           cause: Cause) -> str:
    cid = customer_id(ctx)
    currency = ctx.get("invoice", {}).get("currency") or \
        ctx.get("customer", {}).get("currency")
    invoice = create_charge(runner.session, cid, params["amount"], str(params.get("description")
                            or "Fee"), currency=currency, now=runner.now,
                            key=short_id("chg", cause.key, action.rule))
    return f"invoice {invoice['id']}"


def grant_credit(runner: Runner, action: Action, params: dict[str, Any], ctx: dict[str, Any],
                 cause: Cause) -> str:
    """`credits.grant_requested`: sales grants the catalog's promotional grant (source `rule`),
    once per cause and rule (the event's id is the grant's idempotency key). Automation does
    not write the wallet."""
    cid = customer_id(ctx)
    key = short_id("grq", cause.key, action.ruleset, action.rule, str(params["grant"]))
    add_event(runner.session, "credits.grant_requested", cid, {
        "grant": str(params["grant"]), "reason": str(params.get("reason") or ""), "key": key, "rule": rule_of(action)},
        time=runner.now, id=key)
    return f"credit grant {params['grant']} requested ({key})"


def emit(runner: Runner, action: Action, params: dict[str, Any], ctx: dict[str, Any],
         cause: Cause) -> str:
    cid = context_customer_id(ctx) or None
    event_id = short_id("evt", cause.key, action.ruleset, action.rule, str(params.get("type")))
    props = dict(params.get("data", {}))  # the ruleset schema: an object when given
    props.setdefault("rule", rule_of(action))
    props.setdefault("cause", cause.event_id or cause.key)
    add_event(runner.session, str(params["type"]), cid, plain(props), time=runner.now, id=event_id)
    return event_id


def tag(runner: Runner, action: Action, params: dict[str, Any], ctx: dict[str, Any],
        cause: Cause) -> str:
    cid = customer_id(ctx)
    effects = runner.owners.effects
    current = effects.tags(runner.session, cid)
    wanted = [t for t in current if t not in set(params.get("remove", []))]
    wanted += [t for t in params.get("add", []) if t not in wanted]
    if wanted == current:
        return "unchanged"
    effects.set_tags(runner.session, cid, wanted, runner.now)
    ctx["customer"] = {**ctx.get("customer", {}), "tags": wanted}
    return f"tags {wanted}"
