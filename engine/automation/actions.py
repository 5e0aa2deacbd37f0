"""Carrying out what matched rules ask for, once.

Each action runs in the caller's transaction (the bus handler's, or a scheduler sweep's) in
its own savepoint; which handler carries each action out is automation/vocabulary.py's table.
Idempotency (the table's `ledger` flag):
  notify               messaging's own key (rule, event, channel)
  retry_payment        the job key (invoice, failed attempt) in automation_jobs
  everything else      the ledger automation_actions, keyed (cause, rule, action index)
A business refusal (a subscription already cancelled, an invoice no longer open) is recorded
as the action's outcome and the others go on; anything else raises, so the bus retries the
whole event with nothing half-done.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.automation.context import context_customer_id
from engine.automation.ledger import Cause, Outcome, insert_ignore, insert_ledger, ledger_row, rule_of, short_id
from engine.automation.models import ActionRecord
from engine.automation.planners import Pending, PlannedNote, flush
from engine.automation.ports import Facts, Owners
from engine.automation.templating import CustomerLinks, Seller, template_data
from engine.automation.vocabulary import Collected, handling_of, ours
from engine.rules import Action

__all__ = ["ActionRunner", "Cause", "Outcome", "Refused", "insert_ledger", "ledger_row", "short_id"]

log = logging.getLogger(__name__)

# Collected actions that change nothing a message quotes beyond its context (Facts: a plan's
# or feature's name, how the customer pays, a payment reference).
_FACTLESS = frozenset({"notify", "set_dunning_state"})


class Refused(Exception):
    """An action was refused (a business refusal) while its runner ran without savepoints
    (`optimistic`): the caller rolls its own savepoint back and runs again with one per action."""


class ActionRunner:
    """Carries out one decision's actions for one context."""

    def __init__(
        self,
        session: Session,
        now: datetime,
        owners: Owners,
        *,
        public_url: str,
        batch: bool = False,
        optimistic: bool = False,
        seller: Seller | None = None,
        links: CustomerLinks | None = None,
        facts: Facts | None = None,
        notes: list[PlannedNote] | None = None,
    ) -> None:
        """`batch`: the contexts were read in this transaction, which is a scheduler batch's:
        an action is not wrapped in a savepoint and a refusal raises, so the whole batch
        rolls back and is retried one subject at a time (where a refusal is an outcome).
        `optimistic`: the caller holds a savepoint around all the actions (a bus batch's
        events, Automation.handle_many): an action is not wrapped in its own and a refusal
        raises `Refused`; the caller rolls back and runs them again without `optimistic`.
        `facts`: what the messages quote beyond the context, the batch's read together
        (automation/reads.py `message_facts`; None: each read singly).
        `notes`: where an event's notify actions leave their messages, for the caller to
        write with its other events' in one call (`planners.flush_notes`, Automation.handle_many);
        None: each written with its action."""
        self.session = session
        self.now = now
        self.owners = owners  # what the actions read and do, through the subsystems that own it
        self.public_url = public_url.rstrip("/")
        self.batch = batch
        self.optimistic = optimistic
        self.pending = Pending()  # a batch's writes, flushed at its end (automation/batch.py)
        self.seller = seller or Seller()  # printed on bank-transfer instructions
        self.links = links  # the customer page's links in the emails
        self.facts = facts if facts is not None else owners.records.facts(session)
        self.notes = notes

    def run(self, actions: list[Action], ctx: dict[str, Any], cause: Cause) -> list[Outcome]:
        for index, action in enumerate(actions):
            if ours(action):  # pricing and access read the others
                self.run_one(index, action, ctx, cause)
        return cause.outcomes

    def run_one(self, index: int, action: Action, ctx: dict[str, Any], cause: Cause) -> None:
        """Carry out the decision's action number `index`, in its own savepoint."""
        if self.batch:
            self._carry_out(index, action, ctx, cause)
            return
        if self.optimistic:
            try:
                self._carry_out(index, action, ctx, cause)
            except ValueError as exc:  # as below, but its half-done effects are the caller's to undo
                raise Refused(f"{action.ruleset}/{action.rule}: {action.name}: {exc}") from exc
            return
        savepoint = self.session.begin_nested()
        try:
            self._carry_out(index, action, ctx, cause)
            savepoint.commit()
        except ValueError as exc:  # a business refusal (the owners' errors are ValueErrors)
            savepoint.rollback()
            rule = f"{action.ruleset}/{action.rule}"
            log.warning("rule %s: %s skipped: %s", rule, action.name, exc)
            cause.outcomes.append(Outcome(action.name, rule, "skipped", str(exc)))

    def _carry_out(self, index: int, action: Action, ctx: dict[str, Any], cause: Cause) -> None:
        rule = rule_of(action)
        handling = handling_of(action)
        if isinstance(handling, Collected):
            # Planned, then written in bulk: by the batch at its end, an event's action at once.
            pending = self.pending if self.batch else Pending()
            handling.plan(self, pending, index, action, ctx, cause)
            if not self.batch:
                if self.notes is not None:  # written with the other events' (nothing reads them before)
                    self.notes.extend(pending.notes)
                    pending.notes.clear()
                flush(self.session, self, pending, strict=False)
                if action.name not in _FACTLESS:  # a cancellation changes the plan a message may name
                    self.facts.forget(context_customer_id(ctx) or None)
            return
        if handling.ledger:
            fresh = insert_ignore(self.session, ActionRecord, ledger_row(cause, action, index, ctx, self.now))
            if not fresh:
                cause.outcomes.append(Outcome(action.name, rule, "duplicate"))
                return
        detail = handling.handler(self, action, dict(action.params), ctx, cause)
        # It acted at once: a later message of this customer reads its facts afresh.
        self.facts.forget(context_customer_id(ctx) or None)
        cause.outcomes.append(Outcome(action.name, rule, "done", detail or ""))

    # -- what templates read ----------------------------------------------------------------

    def template_data(self, template: str, ctx: Mapping[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Plain data for the template (engine.automation.templating)."""
        return template_data(
            template,
            ctx,
            data,
            now=self.now,
            public_url=self.public_url,
            seller=self.seller,
            facts=self.facts,
            links=self.links,
        )
