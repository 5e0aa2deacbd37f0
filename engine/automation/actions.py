"""Carrying out what matched rules ask for, once.

Each action runs in the caller's transaction (the bus handler's, or a scheduler sweep's) in
its own savepoint. Idempotency:
  notify               messaging's own key (rule, event, channel)
  retry_payment        the job key (invoice, failed attempt) in automation_jobs
  everything else      the ledger automation_actions, keyed (cause, rule, action index)
A business refusal (a subscription already cancelled, an invoice no longer open) is recorded
as the action's outcome and the others go on; anything else raises, so the bus retries the
whole event with nothing half-done.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine import dunning, messaging, sales
from engine.automation.charges import create_charge
from engine.automation.context import LIVE_SUBSCRIPTIONS
from engine.automation.models import PENDING, ActionRecord, ScheduledJob
from engine.automation.templating import CustomerLinks, DatabaseFacts, Seller, plain, template_data
from engine.clock import FixedClock
from engine.durations import parse_duration
from engine.pricing.quoting import PromotionSource
from engine.rules import Action
from engine.store import add_event

log = logging.getLogger(__name__)

# Actions pricing and access carry out themselves.
NOT_OURS = frozenset({"discount", "apply_coupon", "allow", "deny"})


@dataclass
class Outcome:
    action: str
    rule: str
    status: str  # done | duplicate | skipped
    detail: str = ""


@dataclass
class Cause:
    """Why the actions run: an event (its id) or a scheduled sweep (job, slot, subject)."""

    key: str
    event_id: str | None
    time: datetime  # the event's time, or the slot: delays count from it
    outcomes: list[Outcome] = field(default_factory=list)


def short_id(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:26]
    return f"{prefix}_{digest}"


def ledger_row(cause: Cause, action: Action, index: int, ctx: Mapping[str, Any], now: datetime) \
        -> dict[str, Any]:
    """The automation_actions row that makes action `index` of a decision happen once."""
    rule = f"{action.ruleset}/{action.rule}"
    return {"key": f"{cause.key}|{rule}|{index}|{action.name}"[:400],
            "customer_id": (ctx.get("customer") or {}).get("id"), "action": action.name,
            "rule": rule, "cause": cause.key[:300], "outcome": "", "created_at": now}


def insert_ledger(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Record many actions in one statement; the keys that were new (to be carried out)."""
    if not rows:
        return set()
    table: Any = ActionRecord.__table__
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).on_conflict_do_nothing().returning(table.c.key)
    return {r.key for r in session.execute(stmt, rows)}


def _insert_ignore(session: Session, model: Any, values: dict[str, Any]) -> bool:
    table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = pg_insert(table).values(**values).on_conflict_do_nothing()
    else:
        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    return session.execute(stmt.returning(*table.primary_key.columns)).first() is not None


class ActionRunner:
    """Carries out one decision's actions for one context."""

    def __init__(self, session: Session, now: datetime, *, public_url: str,
                 batch: bool = False, promotions: PromotionSource | None = None,
                 seller: Seller | None = None, renderer: messaging.Renderer | None = None,
                 links: CustomerLinks | None = None) -> None:
        """`batch`: the contexts were read in this transaction, which is a scheduler batch's:
        an action is not wrapped in a savepoint and a refusal raises, so the whole batch
        rolls back and is retried one subject at a time (where a refusal is an outcome)."""
        self.session = session
        self.now = now
        self.clock = FixedClock(now)
        self.public_url = public_url.rstrip("/")
        self.batch = batch
        self.promotions = promotions  # what a cancellation's documents are priced with
        self.seller = seller or Seller()  # printed on bank-transfer instructions
        self.renderer = renderer  # the system's templates (None: messaging renders with a fresh one)
        self.links = links  # the customer page's links in the emails

    def run(self, actions: list[Action], ctx: dict[str, Any], cause: Cause) -> list[Outcome]:
        for index, action in enumerate(actions):
            if action.name not in NOT_OURS:
                self.run_one(index, action, ctx, cause)
        return cause.outcomes

    def run_one(self, index: int, action: Action, ctx: dict[str, Any], cause: Cause) -> None:
        """Carry out the decision's action number `index`, in its own savepoint."""
        if self.batch:
            self._carry_out(index, action, ctx, cause)
            return
        savepoint = self.session.begin_nested()
        try:
            self._carry_out(index, action, ctx, cause)
            savepoint.commit()
        except (sales.SalesError, ValueError) as exc:
            savepoint.rollback()
            rule = f"{action.ruleset}/{action.rule}"
            log.warning("rule %s: %s skipped: %s", rule, action.name, exc)
            cause.outcomes.append(Outcome(action.name, rule, "skipped", str(exc)))

    def _carry_out(self, index: int, action: Action, ctx: dict[str, Any], cause: Cause) -> None:
        rule = f"{action.ruleset}/{action.rule}"
        if action.name != "notify" and action.name != "retry_payment":
            fresh = _insert_ignore(self.session, ActionRecord,
                                   ledger_row(cause, action, index, ctx, self.now))
            if not fresh:
                cause.outcomes.append(Outcome(action.name, rule, "duplicate"))
                return
        detail = getattr(self, "_" + action.name)(action, dict(action.params), ctx, cause)
        cause.outcomes.append(Outcome(action.name, rule, "done", detail or ""))

    # -- the actions ------------------------------------------------------------------------

    def _customer_id(self, ctx: Mapping[str, Any]) -> str:
        cid = (ctx.get("customer") or {}).get("id") or (ctx.get("event") or {}).get("customer_id")
        if not cid:
            raise ValueError("the context names no customer")
        return str(cid)

    def _notify(self, action: Action, params: dict[str, Any], ctx: dict[str, Any],
                cause: Cause) -> str:
        customer = dict(ctx.get("customer") or {})
        if not customer.get("id"):
            raise ValueError("notify: the context names no customer")
        template = str(params["template"])
        data = self.template_data(template, ctx, dict(params.get("data") or {}))
        invoice_id = (ctx.get("invoice") or {}).get("id")
        # An invoice's email carries its PDF (engine.pdf, drawn when the email is sent).
        attachments = [{"kind": "invoice_pdf", "id": str(invoice_id)}] \
            if invoice_id and messaging.TEMPLATE_CATEGORIES.get(template) == "invoices" else []
        results = messaging.notify(
            self.session, customer=customer, template=template,
            channels=list(params.get("channels") or ["email"]), data=data,
            event_id=cause.key[:200], rule_id=f"{action.ruleset}/{action.rule}", now=self.now,
            renderer=self.renderer, attachments=attachments)
        return ", ".join(f"{r.channel}:{r.status}" for r in results)

    def _set_dunning_state(self, action: Action, params: dict[str, Any], ctx: dict[str, Any],
                           cause: Cause) -> str:
        cid = self._customer_id(ctx)
        state = str(params["state"])
        changed = dunning.set_state(self.session, cid, state, now=self.now,
                                    reason=f"{action.ruleset}/{action.rule}",
                                    cause_event_id=cause.event_id)
        ctx["account"] = {**(ctx.get("account") or {}), "dunning_state": state, "state": state}
        return "changed" if changed else "unchanged"

    def _retry_payment(self, action: Action, params: dict[str, Any], ctx: dict[str, Any],
                       cause: Cause) -> str:
        invoice = ctx.get("invoice") or {}
        invoice_id = invoice.get("id")
        if not invoice_id:
            raise ValueError("retry_payment: the context has no invoice")
        if invoice.get("state") not in (None, "finalized"):
            # Closed meanwhile (paid, credited by a cancellation, written off): nothing to collect.
            return f"no retry: the invoice is {invoice.get('state')}"
        due = parse_duration(str(params.get("after") or "1d")).after(cause.time)
        attempt = invoice.get("attempt")
        key = f"payment_retry:{invoice_id}:{attempt}" if attempt is not None \
            else f"payment_retry:{invoice_id}:{cause.key}"
        fresh = _insert_ignore(self.session, ScheduledJob, {
            "key": key[:200], "kind": "payment_retry", "customer_id": invoice.get("customer_id"),
            "due_at": due, "payload": {"invoice_id": invoice_id, "after_attempt": attempt},
            "status": PENDING, "attempts": 0, "rule": f"{action.ruleset}/{action.rule}",
            "created_at": self.now})
        if not fresh:
            existing = self.session.get(ScheduledJob, key[:200])
            due = existing.due_at if existing is not None else due
        ctx["_next_attempt"] = due
        return f"retry at {due.isoformat()}" + ("" if fresh else " (already scheduled)")

    def _cancel_subscription(self, action: Action, params: dict[str, Any], ctx: dict[str, Any],
                             cause: Cause) -> str:
        at = str(params.get("at") or "now")
        invoice = ctx.get("invoice") or {}
        sub = ctx.get("subscription") or {}
        sub_id = sub.get("id") or invoice.get("subscription_id")
        done = []
        if sub_id:
            # A batch read the subscription in this transaction already.
            current = sub if self.batch and sub.get("id") == sub_id else \
                sales.get_subscription(self.session, str(sub_id))
            if current.get("status") in LIVE_SUBSCRIPTIONS:
                result = sales.cancel_subscription(self.session, str(sub_id), clock=self.clock, at=at,
                                                   promotions=self.promotions)
                ctx["subscription"] = {**sub, "status": result.get("status"),
                                       "ended_at": result.get("ended_at"), "reason": "unpaid"}
                done.append(f"subscription {sub_id} cancelled ({at})")
        # The cancellation's credit may have closed the invoice (credited): nothing to write off.
        if invoice.get("id") and invoice.get("state") == "finalized" and \
                sales.get_invoice(self.session, str(invoice["id"]))["status"] == "finalized":
            sales.mark_uncollectible(self.session, str(invoice["id"]), clock=self.clock)
            ctx["invoice"] = {**invoice, "state": "uncollectible", "status": "uncollectible"}
            done.append(f"invoice {invoice['id']} uncollectible")
        return "; ".join(done) or "nothing to cancel"

    def _charge(self, action: Action, params: dict[str, Any], ctx: dict[str, Any],
                cause: Cause) -> str:
        cid = self._customer_id(ctx)
        currency = (ctx.get("invoice") or {}).get("currency") or \
            (ctx.get("customer") or {}).get("currency")
        invoice = create_charge(self.session, cid, params["amount"], str(params.get("description")
                                or "Fee"), currency=currency, now=self.now,
                                key=short_id("chg", cause.key, action.rule))
        return f"invoice {invoice['id']}"

    def _emit(self, action: Action, params: dict[str, Any], ctx: dict[str, Any],
              cause: Cause) -> str:
        cid = (ctx.get("customer") or {}).get("id") or (ctx.get("event") or {}).get("customer_id")
        event_id = short_id("evt", cause.key, action.ruleset, action.rule, str(params.get("type")))
        props = dict(params.get("data") or {})
        props.setdefault("rule", f"{action.ruleset}/{action.rule}")
        props.setdefault("cause", cause.event_id or cause.key)
        add_event(self.session, str(params["type"]), cid, plain(props), time=self.now, id=event_id)
        return event_id

    def _tag(self, action: Action, params: dict[str, Any], ctx: dict[str, Any],
             cause: Cause) -> str:
        cid = self._customer_id(ctx)
        current = list(sales.get_customer(self.session, cid).get("tags") or [])
        wanted = [t for t in current if t not in set(params.get("remove") or [])]
        wanted += [t for t in params.get("add") or [] if t not in wanted]
        if wanted == current:
            return "unchanged"
        sales.update_customer(self.session, cid, {"tags": wanted}, clock=self.clock)
        ctx["customer"] = {**(ctx.get("customer") or {}), "tags": wanted}
        return f"tags {wanted}"

    # -- what templates read ----------------------------------------------------------------

    def template_data(self, template: str, ctx: Mapping[str, Any], data: dict[str, Any]) \
            -> dict[str, Any]:
        """Plain data for the template (engine.automation.templating)."""
        return template_data(template, ctx, data, now=self.now, public_url=self.public_url,
                             seller=self.seller, facts=DatabaseFacts(self.session), links=self.links)



def pending_jobs_query(now: datetime) -> Any:
    return (select(ScheduledJob).where(ScheduledJob.status == PENDING, ScheduledJob.due_at <= now)
            .order_by(ScheduledJob.due_at, ScheduledJob.key))
