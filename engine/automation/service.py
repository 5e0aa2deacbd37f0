"""Rule automation: events and scheduled sweeps in, actions out.

    auto = Automation(db, clock, runtime)            # the system's RulesRuntime
    auto.handle(session, envelope)                   # the bus handler (subsystem "automation")
    auto.sweep(db, "invoice", rules, now, slot="...")  # the scheduler, per `schedule` group
    auto.run_jobs(db, now)                           # due payment retries / delayed work
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine import sales
from engine.automation.actions import ActionRunner, Cause, Outcome, short_id
from engine.automation.context import build_context, parse_time, subject_context, subject_pages
from engine.automation.models import DONE, FAILED, PENDING, SKIPPED, ScheduledJob
from engine.clock import Clock
from engine.rules import Decision, RulesRuntime, ScheduledRule, evaluate
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


@dataclass
class JobsReport:
    run: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _payments_configured() -> bool:
    from engine import payments

    try:
        payments.get_service()
    except RuntimeError:
        return False
    return True


class Automation:
    """Thread-safe; one per process, sharing the process's RulesRuntime."""

    def __init__(self, db: Database, clock: Clock, runtime: RulesRuntime | None = None, *,
                 sync: Callable[[], object] | None = None,
                 public_url: str = "https://billing.example.com", workers: int = 8) -> None:
        self.db = db
        self.workers = workers
        self.clock = clock
        self.runtime = runtime or RulesRuntime(clock)
        self._sync = sync
        self.public_url = public_url
        self._events: tuple[Mapping[str, int], frozenset[str]] = ({}, frozenset())
        self._lock = threading.Lock()

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
        return [r for r in self.runtime.scheduled_rules()
                if self.runtime.ruleset(r.ruleset).rule(r.rule).enabled]

    # -- events ------------------------------------------------------------------------------

    def handler(self, session: Session, envelope: Any) -> None:
        """fn(session, envelope) for the bus (Envelope or dict)."""
        env = envelope.model_dump(mode="json") if hasattr(envelope, "model_dump") else dict(envelope)
        self.handle(session, env)

    def handle(self, session: Session, env: Mapping[str, Any]) -> Decision | None:
        if env.get("type") == "rules.published":
            self.sync()
            return None
        if env.get("type") not in self.events():
            return None
        now = self.clock.now()
        ctx = build_context(session, env, now)
        decision = self.runtime.evaluate(str(env["type"]), ctx)
        if not decision.matches:
            return decision
        cid = (ctx.get("customer") or {}).get("id") or env.get("customer_id")
        decision = self.runtime.log(session, decision, ctx, event_id=str(env.get("id")),
                                    customer_id=cid)
        when = parse_time(env.get("time")) or now
        cause = Cause(self.cause_key(env, ctx), str(env.get("id")), min(when, now))
        ActionRunner(session, now, public_url=self.public_url).run(decision.actions, ctx, cause)
        return decision

    @staticmethod
    def cause_key(env: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
        """Usually the event id. An access denial is keyed per customer, feature, reason and
        day instead: a product that asks again and again gets one offer a day, not hundreds."""
        if env.get("type") == "access.denied":
            props = env.get("properties") or {}
            day = str(env.get("time") or "")[:10]
            return f"access.denied:{env.get('customer_id')}:{props.get('feature')}:" \
                   f"{props.get('reason')}:{day}"
        return str(env.get("id"))

    # -- scheduled rules ---------------------------------------------------------------------

    def sweep(self, db: Database, for_each: str, rules: Sequence[ScheduledRule], now: datetime,
              *, slot: str, page: int = 2000) -> SweepReport:
        """Evaluate `rules` (all `for_each` the same subject) for every subject, and carry out
        the actions of those that hold, each subject in its own transaction. The condition is
        first tested on a light context read in bulk; a subject that passes gets its full
        context and the runtime's authoritative, logged decision before anything acts."""
        started = time.perf_counter()
        report = SweepReport()
        conditions = []
        for r in rules:
            rule = self.runtime.ruleset(r.ruleset).rule(r.rule)
            if rule.enabled and rule.active_at(now):
                conditions.append((r, rule.when))
        if not conditions:
            return report
        candidates: list[tuple[str, list[ScheduledRule]]] = []
        with db.session() as session:
            for batch in subject_pages(session, for_each, now, page=page):
                report.subjects += len(batch)
                for subject_id, ctx in batch:
                    hits = [r for r, when in conditions if when is None or evaluate(when, ctx)]
                    if hits:
                        candidates.append((subject_id, hits))
        def act(item: tuple[str, list[ScheduledRule]]) -> tuple[int, str | None]:
            subject_id, hits = item
            try:
                with db.session() as session:
                    return self._act_on_subject(session, for_each, subject_id, hits, now, slot), None
            except Exception as exc:  # one subject must not stop the sweep
                log.exception("scheduled rules on %s %s failed", for_each, subject_id)
                return 0, f"{for_each} {subject_id}: {type(exc).__name__}: {exc}"

        # Subjects are independent (each its own transaction, keyed per rule, slot and
        # subject): on PostgreSQL several act at once, since their time is database waits.
        workers = self.workers if db.is_postgres and len(candidates) > 1 else 1
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="sweep") as pool:
                results = list(pool.map(act, candidates))
        else:
            results = [act(c) for c in candidates]
        for actions, error in results:
            if error is None:
                report.matched += 1
                report.actions += actions
            else:
                report.errors.append(error)
        report.seconds = time.perf_counter() - started
        return report

    def _act_on_subject(self, session: Session, for_each: str, subject_id: str,
                        rules: Sequence[ScheduledRule], now: datetime, slot: str) -> int:
        ctx = subject_context(session, for_each, subject_id, now)
        if ctx is None:
            return 0
        runner = ActionRunner(session, now, public_url=self.public_url)
        done = 0
        for r in rules:  # in rule order; a rule sees what the previous one changed
            decision = self.runtime.evaluate_scheduled(r.ruleset, r.rule, ctx)
            if not decision.matches:
                continue
            cid = (ctx.get("customer") or {}).get("id")
            self.runtime.log(session, decision, ctx, customer_id=cid)
            cause = Cause(f"{r.ruleset}/{r.rule}@{slot}:{for_each}:{subject_id}", None, now)
            outcomes: list[Outcome] = runner.run(decision.actions, ctx, cause)
            done += len(outcomes)
        return done

    # -- jobs the rules scheduled ------------------------------------------------------------

    def next_job_due(self, db: Database) -> datetime | None:
        with db.session() as session:
            return session.scalar(select(func.min(ScheduledJob.due_at))
                                  .where(ScheduledJob.status == PENDING))

    def run_jobs(self, db: Database, now: datetime, *, limit: int = 500) -> JobsReport:
        """Run every job due at `now`, each in its own transaction (locked, so two
        schedulers never run one job twice)."""
        report = JobsReport()
        with db.session() as session:
            keys = list(session.scalars(
                select(ScheduledJob.key).where(ScheduledJob.status == PENDING,
                                               ScheduledJob.due_at <= now)
                .order_by(ScheduledJob.due_at, ScheduledJob.key).limit(limit)))
        for key in keys:
            try:
                with db.session() as session:
                    stmt = select(ScheduledJob).where(ScheduledJob.key == key)
                    if db.is_postgres:
                        stmt = stmt.with_for_update(skip_locked=True)
                    job = session.scalars(stmt).first()
                    if job is None or job.status != PENDING or job.due_at > now:
                        continue
                    outcome = self._run_job(session, job, now)
                    job.status, job.result, job.done_at = outcome[0], outcome[1], now
                    job.attempts += 1
                    if outcome[0] == DONE:
                        report.run += 1
                    else:
                        report.skipped += 1
            except Exception as exc:
                log.exception("automation job %s failed", key)
                report.failed += 1
                report.errors.append(f"{key}: {type(exc).__name__}: {exc}")
                with db.session() as session:
                    session.execute(update(ScheduledJob).where(ScheduledJob.key == key).values(
                        attempts=ScheduledJob.attempts + 1, result=str(exc)[:1000],
                        due_at=now + timedelta(minutes=5)))
                    session.execute(update(ScheduledJob).where(
                        ScheduledJob.key == key, ScheduledJob.attempts >= JOB_ATTEMPTS)
                        .values(status=FAILED, done_at=now))
        return report

    def _run_job(self, session: Session, job: ScheduledJob, now: datetime) -> tuple[str, str]:
        if job.kind != "payment_retry":
            return SKIPPED, f"unknown job kind {job.kind!r}"
        invoice_id = str(job.payload.get("invoice_id"))
        try:
            invoice = sales.get_invoice(session, invoice_id)
        except sales.NotFound:
            return SKIPPED, "unknown invoice"
        if invoice.get("status") != "finalized":
            return SKIPPED, f"invoice is {invoice.get('status')}"
        event_id = short_id("rty", job.key)
        props = {"invoice_id": invoice_id, "rule": job.rule}
        envelope: dict[str, Any] = {"id": event_id, "type": "payment.retry_requested",
                                    "customer_id": job.customer_id, "time": now.isoformat(),
                                    "properties": props}
        if _payments_configured():
            from engine import payments

            payments.handle_payment_retry(session, envelope)
            return DONE, "retried"
        # No provider in this process: ask whoever collects (a payments worker) to retry.
        add_event(session, "payment.retry_requested", job.customer_id, props, time=now, id=event_id)
        return DONE, "retry requested"
