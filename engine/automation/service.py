"""Rule automation: events and scheduled sweeps in, actions out.

auto = Automation(db, clock, runtime, owners)    # engine.system binds the owners
auto.handle(session, envelope)                   # the bus handler (subsystem "automation")
auto.sweep(db, "invoice", rules, now, slot="...")  # the scheduler, per `schedule` group
auto.run_jobs(db, now)                           # due payment retries / delayed work
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.automation import prefilter
from engine.automation.actions import ActionRunner, Cause, Outcome, Refused, short_id
from engine.automation.batch import act_batch
from engine.automation.context import (
    build_context,
    context_customer_id,
    parse_time,
    subject_context,
    subject_contexts,
    subjects_by_id,
)
from engine.automation.models import DONE, FAILED, PENDING, SKIPPED, ScheduledJob
from engine.automation.planners import PlannedNote, flush_notes
from engine.automation.ports import Facts, Owners, Records
from engine.automation.reads import BatchReads, decision_customer, event_facts, message_facts
from engine.automation.templating import CustomerLinks, Seller
from engine.clock import Clock
from engine.events import BatchHandler, Envelope
from engine.rules import Decision, RulesRuntime, ScheduledRule, evaluate
from engine.rules.conditions import Node
from engine.store import Database, add_event

log = logging.getLogger(__name__)

SUBSYSTEM = "automation"
JOB_ATTEMPTS = 5


@dataclass
class SweepReport:
    subjects: int = 0
    matched: int = 0
    actions: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def add(self, results: list[tuple[int, str | None]]) -> None:
        """A batch's (actions, error) per subject."""
        for actions, error in results:
            if error is None:
                self.matched += 1
                self.actions += actions
            else:
                self.errors.append(error)


# A subject that may be due: (subject id, its customer's id, the rules that may hold for it).
Candidate = tuple[str, str, list[ScheduledRule]]


@dataclass
class JobsReport:
    run: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Automation:
    """Thread-safe; one per process, sharing the process's RulesRuntime."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        runtime: RulesRuntime,
        owners: Owners,
        *,
        sync: Callable[[], object] | None = None,
        public_url: str = "https://billing.example.com",
        seller: Seller | None = None,
        links: CustomerLinks | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.runtime = runtime
        # What rules read and do, through the subsystems that own it (engine.system binds them).
        self.owners = owners
        self._sync = sync
        self.public_url = public_url
        self.seller = seller or Seller()
        # Links to the customer page, in the emails (None: the emails have none).
        self.links = links
        self._events: tuple[Mapping[str, int], frozenset[str]] = ({}, frozenset())
        self._lock = threading.Lock()
        # fn(session, envelope) for the bus, with its batch twin (a batch's events at once).
        self.handler = BatchHandler(self._handle_envelopes, "Automation.handler")

    @property
    def records(self) -> Records:
        return self.owners.records

    def _runner(
        self,
        session: Session,
        now: datetime,
        facts: Facts,
        *,
        batch: bool = False,
        optimistic: bool = False,
        notes: list[PlannedNote] | None = None,
    ) -> ActionRunner:
        return ActionRunner(
            session,
            now,
            self.owners,
            public_url=self.public_url,
            seller=self.seller,
            batch=batch,
            optimistic=optimistic,
            links=self.links,
            facts=facts,
            notes=notes,
        )

    # -- rules -------------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring the runtime to the published rulesets (the system's own sync when given)."""
        if self._sync is not None:
            self._sync()
        else:
            from engine.rules import sync_runtime

            sync_runtime(self.runtime, self.db)

    def events(self) -> frozenset[str]:
        """The event types some live rule reacts to."""
        versions = self.runtime.versions()
        cached_versions, events = self._events
        if dict(cached_versions) != versions:
            names: set[str] = set()
            for name in versions:
                names.update(self.runtime.ruleset(name).events)
            events = frozenset(names)
            self._events = (dict(versions), events)
        return events

    def scheduled_rules(self) -> list[ScheduledRule]:
        return [r for r in self.runtime.scheduled_rules() if self.runtime.ruleset(r.ruleset).rule(r.rule).enabled]

    # -- events ------------------------------------------------------------------------------

    def _handle_envelopes(self, session: Session, envelopes: Sequence[Envelope]) -> None:
        self.handle_many(session, [env.model_dump(mode="json") for env in envelopes])

    def handle(self, session: Session, env: Mapping[str, Any]) -> Decision | None:
        """One event: a batch of one (`handle_many`)."""
        return self.handle_many(session, [env])[0]

    def handle_many(self, session: Session, envelopes: Sequence[Mapping[str, Any]]) -> list[Decision | None]:
        """Events in their order, each as it comes alone, with what their contexts read
        read ahead in bulk (automation/reads.py): the bus's batch in a few queries; so are
        the facts their messages quote (`event_facts`), at the first message.

        Their actions run in one savepoint, not one each (a savepoint per action was about
        5 % of the lifecycle what-if). A refused action is an outcome and the others go on,
        without half its effects: when one is refused, the savepoint is rolled back and the
        events run again with a savepoint per action (`ActionRunner.run_one`).

        Their messages are written together at the end, in one `notify_many` (one write of
        every notification, not one each: ~8 % of the lifecycle what-if), in the order they
        were asked for: nothing a later event's rules read is a notification. The events
        are handled at one time, the clock's when the batch began (one transaction), which
        the messages are recorded at."""
        now = self.clock.now()
        savepoint = session.begin_nested()
        try:
            notes: list[PlannedNote] = []
            decisions = self._handle_batch(session, envelopes, now, notes)
            try:
                flush_notes(session, self.owners.effects, notes, now)
            except ValueError as exc:  # refused: each event's messages written with its actions
                raise Refused(f"notify: {exc}") from exc
            savepoint.commit()
            return decisions
        except Refused:
            savepoint.rollback()
        return self._handle_batch(session, envelopes, now, None)

    def _handle_batch(
        self, session: Session, envelopes: Sequence[Mapping[str, Any]], now: datetime, notes: list[PlannedNote] | None
    ) -> list[Decision | None]:
        """The events' actions, `optimistic` (in the caller's savepoint, their messages left
        in `notes`) unless `notes` is None (a savepoint per action, messages written at once)."""
        reads = BatchReads(self.records)
        events = self.events()
        ours = [env for env in envelopes if env.get("type") in events]
        reads.prefetch(session, ours)
        facts = event_facts(self.records, session, ours)
        decisions = []
        for env in envelopes:
            decision = self._handle_one(session, env, now, reads, facts, notes)
            if decision is not None and decision.matches:
                cid = decision_customer(env)
                reads.forget(cid)  # its rules acted: its rows may have changed
                facts.forget(str(cid) if cid else None)
            decisions.append(decision)
        return decisions

    def _handle_one(
        self,
        session: Session,
        env: Mapping[str, Any],
        now: datetime,
        reads: Records,
        facts: Facts,
        notes: list[PlannedNote] | None,
    ) -> Decision | None:
        if env.get("type") == "rules.published":
            self.sync()
            return None
        if env.get("type") in CLOSING_EVENTS:
            drop_retries(self.records, session, env.get("customer_id"), now)
        if env.get("type") not in self.events():
            return None
        ctx = build_context(reads, session, env, now)
        decision = self.runtime.evaluate(str(env["type"]), ctx)
        if not decision.matches:
            return decision
        cid = ctx["customer"].get("id") or env.get("customer_id")  # build_context: always a dict
        decision = self.runtime.log(session, decision, ctx, event_id=str(env.get("id")), customer_id=cid)
        when = parse_time(env.get("time")) or now
        cause = Cause(self.cause_key(env, ctx), str(env.get("id")), min(when, now))
        self._runner(session, now, facts, optimistic=notes is not None, notes=notes).run(decision.actions, ctx, cause)
        return decision

    @staticmethod
    def cause_key(env: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
        """Usually the event id. An access denial is keyed per customer, feature, reason and
        day instead: a product that asks again and again gets one offer a day, not hundreds."""
        if env.get("type") == "access.denied":
            props = env.get("properties", {})
            day = str(env.get("time") or "")[:10]
            return f"access.denied:{env.get('customer_id')}:{props.get('feature')}:{props.get('reason')}:{day}"
        return str(env.get("id"))

    # -- scheduled rules ---------------------------------------------------------------------

    def sweep(
        self,
        db: Database,
        for_each: str,
        rules: Sequence[ScheduledRule],
        now: datetime,
        *,
        slot: str,
        page: int = 2000,
        batch: int = 500,
    ) -> SweepReport:
        """Evaluate `rules` (all `for_each` the same subject) for every subject they could hold
        for, and carry out the actions of those that hold.

        Read: the rules' conditions on invoice age, invoice state and dunning state become SQL
        filters (`prefilter`), so only the subjects that may be due are read, a page at a
        time, with their contexts in bulk; the full condition is tested on those. Act: the
        subjects that pass, `batch` at a time in one transaction each, re-read and with their
        dunning records locked, get the runtime's authoritative, logged decision, and their
        actions are written together (`batch.act_batch`). A batch that fails is rolled back
        and its subjects retried one by one, each in its own transaction, so one bad subject
        stops nothing else. `report.subjects` counts the subjects read."""
        started = time.perf_counter()
        report = SweepReport()
        conditions = self._conditions(rules, now)
        if not conditions:
            return report
        candidates = self._candidates(db, for_each, conditions, now, page, report)
        # One batch after the other: rendering runs under a wall-time budget, and threads
        # contending for the GIL on a busy machine would fail messages for being slow.
        for round_ in _rounds(candidates):
            for i in range(0, len(round_), batch):
                report.add(self._act_batch(db, for_each, round_[i : i + batch], now, slot))
        report.seconds = time.perf_counter() - started
        return report

    def _conditions(self, rules: Sequence[ScheduledRule], now: datetime) -> list[tuple[ScheduledRule, Node | None]]:
        """The rules enabled and active at `now`, with their conditions."""
        found = []
        for r in rules:
            rule = self.runtime.ruleset(r.ruleset).rule(r.rule)
            if rule.enabled and rule.active_at(now):
                found.append((r, rule.when))
        return found

    def _candidates(
        self,
        db: Database,
        for_each: str,
        conditions: list[tuple[ScheduledRule, Node | None]],
        now: datetime,
        page: int,
        report: SweepReport,
    ) -> list[Candidate]:
        """The subjects the prefilter's scan reads, a page at a time, whose context passes one
        of the conditions (`report.subjects` counts those read)."""
        candidates: list[Candidate] = []
        with db.read_session() as session:
            filters = prefilter.scan_filters(
                for_each,
                [w for _, w in conditions],
                now,
                self.records.known_states(session),
                active=self.records.default_state,
            )
            after: str | None = "" if filters != [] else None  # []: nothing can be due
            while after is not None:
                rows = self.records.scan(session, for_each, after=after, limit=page, filters=filters)
                after = str(rows[-1]["id"]) if rows else None
                report.subjects += len(rows)
                for subject_id, ctx in subject_contexts(self.records, session, for_each, rows, now):
                    hits = [r for r, when in conditions if when is None or evaluate(when, ctx)]
                    if hits:
                        candidates.append((subject_id, context_customer_id(ctx) or subject_id, hits))
        return candidates

    def _act_batch(
        self, db: Database, for_each: str, group: list[Candidate], now: datetime, slot: str
    ) -> list[tuple[int, str | None]]:
        hits = {sid: rules for sid, _, rules in group}
        try:
            with db.session() as session:
                # Multi-row INSERTs (notifications, events, ledger, decisions) in pages of 25
                # rows: psycopg parses a 500-row VALUES list far slower than 20 short ones it
                # has cached (a 20,000-account tick: 13 s at the default 1,000, 5-6 s at 25).
                session.connection(execution_options={"insertmanyvalues_page_size": 25})
                rows = subjects_by_id(self.records, session, for_each, list(hits))
                contexts = subject_contexts(self.records, session, for_each, rows, now, lock=True)
                facts = message_facts(self.records, session, [ctx for _, ctx in contexts])
                done = act_batch(
                    session,
                    self.runtime,
                    self._runner(session, now, facts, batch=True),
                    for_each,
                    [(sid, ctx, hits[sid]) for sid, ctx in contexts],
                    now,
                    slot,
                )
            return [(done.get(sid, 0), None) for sid in hits]
        except Exception:
            log.warning(
                "a batch of %d %s subjects failed; acting on them one by one", len(group), for_each, exc_info=True
            )
        return [self._act_alone(db, for_each, sid, rules, now, slot) for sid, _, rules in group]

    def _act_alone(
        self, db: Database, for_each: str, subject_id: str, rules: Sequence[ScheduledRule], now: datetime, slot: str
    ) -> tuple[int, str | None]:
        try:
            with db.session() as session:
                return self._act_on_subject(session, for_each, subject_id, rules, now, slot), None
        except Exception as exc:  # one subject must not stop the sweep
            log.exception("scheduled rules on %s %s failed", for_each, subject_id)
            return 0, f"{for_each} {subject_id}: {type(exc).__name__}: {exc}"

    def _act_on_subject(
        self, session: Session, for_each: str, subject_id: str, rules: Sequence[ScheduledRule], now: datetime, slot: str
    ) -> int:
        ctx = subject_context(self.records, session, for_each, subject_id, now)
        if ctx is None:
            return 0
        runner = self._runner(session, now, message_facts(self.records, session, [ctx]))  # a batch of one
        done = 0
        for r in rules:  # in rule order; a rule sees what the previous one changed
            decision = self.runtime.evaluate_scheduled(r.ruleset, r.rule, ctx)
            if not decision.matches:
                continue
            cid = ctx["customer"].get("id")
            self.runtime.log(session, decision, ctx, customer_id=cid)
            cause = Cause(f"{r.ruleset}/{r.rule}@{slot}:{for_each}:{subject_id}", None, now)
            outcomes: list[Outcome] = runner.run(decision.actions, ctx, cause)
            done += len(outcomes)
        return done

    # -- jobs the rules scheduled ------------------------------------------------------------

    def run_jobs(self, db: Database, now: datetime, *, limit: int = 500) -> JobsReport:
        """Run every job due at `now`, each in its own transaction (locked, so two
        schedulers never run one job twice)."""
        report = JobsReport()
        with db.session() as session:
            keys = list(
                session.scalars(
                    select(ScheduledJob.key)
                    .where(ScheduledJob.status == PENDING, ScheduledJob.due_at <= now)
                    .order_by(ScheduledJob.due_at, ScheduledJob.key)
                    .limit(limit)
                )
            )
        for key in keys:
            try:
                with db.session() as session:
                    status = self._run_due_job(session, key, now, lock=db.is_postgres)
                if status == DONE:
                    report.run += 1
                elif status == SKIPPED:
                    report.skipped += 1
            except Exception as exc:
                log.exception("automation job %s failed", key)
                report.failed += 1
                report.errors.append(f"{key}: {type(exc).__name__}: {exc}")
                _job_failed(db, key, now, exc)
        return report

    def _run_due_job(self, session: Session, key: str, now: datetime, *, lock: bool) -> str | None:
        """Run the job `key` if it is still pending and due; its new status (None: not run)."""
        stmt = select(ScheduledJob).where(ScheduledJob.key == key)
        if lock:
            stmt = stmt.with_for_update(skip_locked=True)
        job = session.scalars(stmt).first()
        if job is None or job.status != PENDING or job.due_at > now:
            return None
        job.status, job.result = self._run_job(session, job, now)
        job.done_at = now
        job.attempts += 1
        return job.status

    def _run_job(self, session: Session, job: ScheduledJob, now: datetime) -> tuple[str, str]:
        if job.kind != "payment_retry":
            return SKIPPED, f"unknown job kind {job.kind!r}"
        invoice_id = str(job.payload.get("invoice_id"))
        invoice = self.records.invoice(session, invoice_id)
        if invoice is None:
            return SKIPPED, "unknown invoice"
        if invoice.get("status") != "finalized":
            return SKIPPED, f"invoice is {invoice.get('status')}"
        event_id = short_id("rty", job.key)
        props = {"invoice_id": invoice_id, "rule": job.rule}
        envelope: dict[str, Any] = {
            "id": event_id,
            "type": "payment.retry_requested",
            "customer_id": job.customer_id,
            "time": now.isoformat(),
            "properties": props,
        }
        if self.owners.effects.retry_payment(session, envelope):
            return DONE, "retried"
        # No provider in this process: ask whoever collects (a payments worker) to retry.
        add_event(session, "payment.retry_requested", job.customer_id, props, time=now, id=event_id)
        return DONE, "retry requested"


def _job_failed(db: Database, key: str, now: datetime, exc: Exception) -> None:
    """A job that raised: tried again in five minutes, failed for good after JOB_ATTEMPTS."""
    with db.session() as session:
        session.execute(
            update(ScheduledJob)
            .where(ScheduledJob.key == key)
            .values(attempts=ScheduledJob.attempts + 1, result=str(exc)[:1000], due_at=now + timedelta(minutes=5))
        )
        session.execute(
            update(ScheduledJob)
            .where(ScheduledJob.key == key, ScheduledJob.attempts >= JOB_ATTEMPTS)
            .values(status=FAILED, done_at=now)
        )


# Events after which an invoice may be closed: its pending retries are dropped then, not
# left to be skipped one by one when they fall due (a cancellation's credit closing the
# renewal invoice, a write-off, a void, a payment by other means).
CLOSING_EVENTS = frozenset(
    {"invoice.credited", "invoice.voided", "invoice.uncollectible", "invoice.paid", "subscription.canceled"}
)


def drop_retries(records: Records, session: Session, customer_id: Any, now: datetime) -> int:
    """Mark the customer's pending payment retries of invoices no longer open as skipped.
    Idempotent (a redelivered event finds nothing pending); returns how many were dropped."""
    if not customer_id:
        return 0
    jobs = session.scalars(
        select(ScheduledJob)
        .where(
            ScheduledJob.customer_id == str(customer_id),
            ScheduledJob.kind == "payment_retry",
            ScheduledJob.status == PENDING,
        )
        .with_for_update()
    ).all()
    dropped = 0
    for job in jobs:
        status = (records.invoice(session, str(job.payload.get("invoice_id"))) or {"status": "unknown"})["status"]
        if status != "finalized":
            job.status, job.result, job.done_at = SKIPPED, f"dropped: the invoice is {status}", now
            dropped += 1
    return dropped


def _rounds(items: list[Candidate]) -> list[list[Candidate]]:
    """The subjects in rounds with a customer at most once per round: a customer's next
    subject acts in a later round, so it sees what the earlier one changed (its dunning
    state), as one at a time would."""
    rounds: list[list[Candidate]] = []
    seen: dict[str, int] = {}
    for item in items:
        n = seen.get(item[1], -1) + 1
        seen[item[1]] = n
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(item)
    return rounds
