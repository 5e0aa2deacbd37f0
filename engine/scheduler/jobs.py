"""What the scheduler runs, keyed by (job, time slot), on the engine's clock.

A job has a trigger (APScheduler's IntervalTrigger or CronTrigger, in UTC) and a function of
the time. Its *slot* at time t is the trigger's latest fire time at or before t. A run first
claims (job, slot) in `scheduler_runs`; a slot claimed before (by this or another scheduler)
is not run again. A failed run can be claimed again by a later tick; a run whose scheduler
died is taken over once its lease has passed.

`Jobs.run_due(now)` runs every job whose slot at `now` is new: the test clock path (and a
catch-up of everything missed). The APScheduler runner (runner.py) calls `Jobs.run(name)`
when a trigger fires.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine import automation
from engine.clock import Clock
from engine.rules import ScheduledRule
from engine.scheduler.models import DONE, FAILED, RUNNING, JobRun
from engine.store import Database

log = logging.getLogger(__name__)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # interval slots are aligned to it
LEASE = timedelta(minutes=15)  # a `running` slot older than this belonged to a dead scheduler
KEEP_RUNS = timedelta(days=30)
OWNER = f"{socket.gethostname()}:{os.getpid()}"


class CronError(ValueError):
    pass


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday(field_: str) -> str:
    """Crontab weekdays (0 or 7 = Sunday, 1 = Monday) as day names: APScheduler 3 numbers
    them from Monday = 0, so "1" would silently mean Tuesday."""
    parts: list[str] = []
    for part in field_.lower().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if part == "*":
            return "*"
        if body == "*":
            lo, hi = 0, 6
        elif "-" in body:
            a, b = body.split("-", 1)
            lo, hi = _day_number(a), _day_number(b)
        else:
            lo = hi = _day_number(body)
            if step_text:
                hi = 6
        if hi < lo or step < 1:
            raise ValueError(f"weekday range {part!r}")
        parts.extend(_DAYS[d % 7] for d in range(lo, hi + 1, step))
    return ",".join(dict.fromkeys(parts))


def _day_number(token: str) -> int:
    if token in _DAYS:
        return _DAYS.index(token)
    value = int(token)
    if not 0 <= value <= 7:
        raise ValueError(f"weekday {token!r} is 0-7")
    return value


def cron_trigger(expression: str) -> CronTrigger:
    """A five-field crontab expression (minute hour day month weekday) in UTC, with
    crontab's weekday numbers (0/7 Sunday)."""
    try:
        fields = expression.split()
        if len(fields) != 5:
            raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
        minute, hour, day, month, weekday = fields
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_weekday(weekday), timezone=UTC)
    except (ValueError, TypeError) as exc:
        raise CronError(f"schedule {expression!r}: {exc}") from None


def interval_trigger(**every: int) -> IntervalTrigger:
    return IntervalTrigger(**every, start_date=EPOCH, timezone=UTC)


def slot_at(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The trigger's latest fire time at or before `now` (None if it never fired)."""
    now = now.astimezone(UTC)
    if isinstance(trigger, IntervalTrigger):
        step = trigger.interval
        start = trigger.start_date
        if now < start:
            return None
        return start + step * ((now - start) // step)
    for back in (timedelta(hours=2), timedelta(days=2), timedelta(days=40), timedelta(days=400),
                 timedelta(days=3000)):
        fire = trigger.get_next_fire_time(None, now - back)
        if fire is None or fire > now:
            continue
        while True:
            nxt = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
            if nxt is None or nxt > now:
                return fire
            fire = nxt
    return None


def next_fire(trigger: BaseTrigger, after: datetime) -> datetime | None:
    """The trigger's first fire time strictly after `after`."""
    fire: datetime | None = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    return fire


@dataclass
class Job:
    name: str
    trigger: BaseTrigger
    run: Callable[[datetime, datetime], Any]  # (now, slot)
    keyed: bool = True  # False: safe to run any number of times (its own claims), no slot row
    # Cron jobs with no run recorded yet start at their next fire time, not with a run now.
    catch_up_first: bool = False


@dataclass
class RunResult:
    job: str
    slot: datetime
    status: str  # done | failed | taken (claimed elsewhere)
    detail: Any = None


# Work the assembly hands the scheduler (engine/system/scheduling.py): run it at a time,
# get back what it did (kept with the run).
Work = Callable[[datetime], Mapping[str, object]]


@dataclass
class Jobs:
    """The job table of one engine process: built-in jobs plus one job per distinct
    (for_each, schedule) of the live scheduled rules. The scheduler owns the times and the
    slots; what runs is automation's (sweeps, retries) and the work it is handed."""

    db: Database
    clock: Clock
    auto: automation.Automation
    # Period closes and renewals (sales' billing run); None: not in this process.
    billing: Work | None = None
    # What the `billing` job does after the billing run (credit grants expire).
    expire: Work | None = None
    # Message delivery over the system's channels; None: nothing is sent from here.
    deliver: Work | None = None
    # Collection of invoices due (with a payment provider): a `payments` job when given.
    collect: Work | None = None
    # After each job: let the system's bus dispatch what it committed, then apply it.
    after_run: Callable[[], object] = lambda: None
    drain: Callable[[], object] = lambda: None
    owner: str = OWNER
    jobs: dict[str, Job] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _versions: dict[str, int] = field(default_factory=dict)
    # The time whose billing run the caller of run_due just ran (a test clock's stop):
    # the `billing` job then does only what follows it.
    _billed_at: datetime | None = None

    def __post_init__(self) -> None:
        self.jobs = self.builtin_jobs()
        self.refresh_rule_jobs()

    def refresh_rule_jobs(self) -> bool:
        """Rebuild the rule jobs when the runtime's ruleset versions changed. True if so."""
        versions = self.auto.runtime.versions()
        if versions == self._versions:
            return False
        fresh = self.rule_jobs()
        with self._lock:
            for name in [n for n in self.jobs if n.startswith("rules:")]:
                del self.jobs[name]
            self.jobs.update(fresh)
            self._versions = dict(versions)
        return True

    # -- the jobs ----------------------------------------------------------------------------

    def builtin_jobs(self) -> dict[str, Job]:
        jobs = [
            Job("billing", interval_trigger(minutes=1), self._billing),
            Job("automation.jobs", interval_trigger(seconds=30), self._automation_jobs),
            Job("messaging", interval_trigger(seconds=10), self._run(self.deliver), keyed=False),
            Job("housekeeping", cron_trigger("17 3 * * *"), self._housekeeping),
        ]
        if self.collect is not None:
            jobs.append(Job("payments", interval_trigger(minutes=5), self._run(self.collect)))
        return {j.name: j for j in jobs}

    def rule_jobs(self) -> dict[str, Job]:
        groups: dict[tuple[str, str], list[ScheduledRule]] = {}
        for rule in self.auto.scheduled_rules():
            groups.setdefault((rule.for_each, rule.schedule), []).append(rule)
        out = {}
        for (for_each, schedule), rules in sorted(groups.items()):
            name = f"rules:{for_each}:{schedule}"
            try:
                trigger = cron_trigger(schedule)
            except CronError as exc:  # the loader validates crons; never stop the others
                log.error("%s: %s", name, exc)
                continue
            out[name] = Job(name, trigger, self._sweep(for_each, tuple(rules)), catch_up_first=True)
        return out

    def reload_rules(self) -> tuple[list[str], list[str]]:
        """After rules were published: the rule jobs to add and to remove (by name)."""
        self.auto.sync()
        old = {n for n in self.jobs if n.startswith("rules:")}
        self.refresh_rule_jobs()
        fresh = {n for n in self.jobs if n.startswith("rules:")}
        return sorted(fresh - old), sorted(old - fresh)

    def _billing(self, now: datetime, slot: datetime) -> Mapping[str, object]:
        """The billing run, unless the caller ran it at `now` (run_due's `billed`); then expiry."""
        done: dict[str, object] = {}
        if self.billing is not None and self._billed_at != now:
            done |= self.billing(now)
        if self.expire is not None:
            done |= self.expire(now)
        return done

    def _automation_jobs(self, now: datetime, slot: datetime) -> Any:
        report = self.auto.run_jobs(self.db, now)
        return {"run": report.run, "skipped": report.skipped, "failed": report.failed}

    @staticmethod
    def _run(work: Work | None) -> Callable[[datetime, datetime], Mapping[str, object] | None]:
        def run(now: datetime, slot: datetime) -> Mapping[str, object] | None:
            return work(now) if work is not None else None

        return run

    def _housekeeping(self, now: datetime, slot: datetime) -> Any:
        with self.db.session() as session:
            result = session.execute(delete(JobRun).where(JobRun.slot < now - KEEP_RUNS))
        return {"pruned": getattr(result, "rowcount", None)}

    def _sweep(self, for_each: str, rules: tuple[ScheduledRule, ...]) -> Callable[[datetime, datetime], Any]:
        def run(now: datetime, slot: datetime) -> Any:
            report = self.auto.sweep(self.db, for_each, rules, now, slot=slot.isoformat())
            return {"subjects": report.subjects, "matched": report.matched,
                    "actions": report.actions, "errors": len(report.errors)}

        return run

    # -- slots -------------------------------------------------------------------------------

    def last_slot(self, name: str) -> datetime | None:
        with self.db.session() as session:
            return session.scalar(select(func.max(JobRun.slot)).where(JobRun.job == name))

    def last_slots(self) -> dict[str, datetime]:
        """Every job's latest slot claimed, in one query: `due` runs at each stop of a test
        clock (hundreds a simulated year), where a transaction per job was a fifth of a stop."""
        with self.db.read_session() as session:
            rows = session.execute(select(JobRun.job, func.max(JobRun.slot)).group_by(JobRun.job))
            return {job: slot for job, slot in rows if slot is not None}

    def claim(self, name: str, slot: datetime) -> bool:
        """Take (job, slot): True when this scheduler is to run it."""
        return name in self.claim_many([(name, slot)])

    def claim_many(self, wanted: Sequence[tuple[str, datetime]]) -> set[str]:
        """Take each (job, slot) in one transaction (a clock stop's jobs): the jobs this
        scheduler is to run. A slot is taken once across schedulers, as by `claim`: the rows
        are inserted unless there (in the order given: two schedulers never wait on each
        other crosswise), and a slot there is taken again only if its run failed or its
        owner died."""
        if not wanted:
            return set()
        wall = datetime.now(UTC)
        rows = [{"job": name, "slot": slot, "status": RUNNING, "owner": self.owner,
                 "attempts": 1, "started_at": wall} for name, slot in wanted]
        with self.db.session() as session:
            table: Any = JobRun.__table__
            stmt: Any = (pg_insert(table) if self.db.is_postgres else sqlite_insert(table)) \
                .values(rows).on_conflict_do_nothing().returning(table.c.job)
            taken = {job for (job,) in session.execute(stmt)}
            for name, slot in wanted:
                if name not in taken and self._take_again(session, name, slot, wall):
                    taken.add(name)
            return taken

    def _take_again(self, session: Session, name: str, slot: datetime, wall: datetime) -> bool:
        """Claimed before: take it again only if that run failed or its owner died."""
        again: Any = session.execute(
            update(JobRun).where(
                JobRun.job == name, JobRun.slot == slot,
                (JobRun.status == FAILED) | ((JobRun.status == RUNNING)
                                             & (JobRun.started_at < wall - LEASE)))
            .values(status=RUNNING, owner=self.owner, started_at=wall,
                    attempts=JobRun.attempts + 1))
        return bool(again.rowcount)

    def _finish(self, name: str, slot: datetime, status: str, detail: Any) -> None:
        self._finish_many([RunResult(name, slot, status, detail)])

    def _finish_many(self, results: Sequence[RunResult]) -> None:
        """Record how each run ended, in one transaction."""
        if not results:
            return
        table: Any = JobRun.__table__
        stmt = update(table).where(table.c.job == bindparam("b_job"), table.c.slot == bindparam("b_slot")) \
            .values(status=bindparam("b_status"), finished_at=bindparam("b_at"), detail=bindparam("b_detail"))
        wall = datetime.now(UTC)
        with self.db.session() as session:
            session.execute(stmt, [{"b_job": r.job, "b_slot": r.slot, "b_status": r.status, "b_at": wall,
                                    "b_detail": str(r.detail)[:4000]} for r in results])

    def run(self, name: str, now: datetime | None = None) -> RunResult | None:
        """Run job `name` for its slot at `now` (the engine's clock by default), unless that
        slot was run already. What an APScheduler trigger calls."""
        now = now or self.clock.now()
        job = self.jobs.get(name)
        if job is None:
            return None
        slot = slot_at(job.trigger, now)
        if slot is None:
            return None
        if job.keyed and not self.claim(name, slot):
            return RunResult(name, slot, "taken")
        result, record = self._execute(job, now, slot)
        if job.keyed:
            self._finish_many([record])
        return result

    def _execute(self, job: Job, now: datetime, slot: datetime) -> tuple[RunResult, RunResult]:
        """Run a claimed job: what it returns, and what its slot's row records."""
        try:
            detail = job.run(now, slot)
            self.after_run()
        except Exception as exc:
            log.exception("scheduled job %s (slot %s) failed", job.name, slot.isoformat())
            return RunResult(job.name, slot, FAILED, str(exc)), \
                RunResult(job.name, slot, FAILED, f"{type(exc).__name__}: {exc}")
        done = RunResult(job.name, slot, DONE, detail)
        return done, done

    def due(self, now: datetime) -> list[str]:
        """The jobs whose slot at `now` has not been run yet."""
        out = []
        lasts = self.last_slots()
        for name, job in list(self.jobs.items()):
            slot = slot_at(job.trigger, now)
            if slot is None:
                continue
            last = lasts.get(name) if job.keyed else None
            if last is None and job.catch_up_first:
                # A cron rule never run before starts with its next slot: record this one.
                if self.claim(name, slot):
                    self._finish(name, slot, DONE, "baseline: the job was new, nothing run")
                continue
            if last is None or slot > last:
                out.append(name)
        return out

    def run_due(self, now: datetime, *, billed: bool = False) -> list[RunResult]:
        """Everything due at `now`, in a fixed order: period closes, retries, payments,
        scheduled rules; then the events they caused (`drain`, the system's);
        then message delivery, so what the work said goes out at the same time.
        `billed`: the caller has just run the billing run at `now` (a test clock's stop,
        sales.advance_clock), so the `billing` job does not run it a second time."""
        self._billed_at = now if billed else None
        try:
            return self._run_due(now)
        finally:
            self._billed_at = None

    def _run_due(self, now: datetime) -> list[RunResult]:
        self.refresh_rule_jobs()
        order = ["billing", "payments", "automation.jobs"]
        names = self.due(now)
        ordered = [n for n in order if n in names] + sorted(
            n for n in names if n not in order and n != "messaging")
        # The stop's slots claimed in one transaction and their ends recorded in one (a stop
        # is hundreds a simulated year); each job still runs alone, its events applied after it.
        table = dict(self.jobs)
        slots = {n: s for n in ordered if n in table and (s := slot_at(table[n].trigger, now)) is not None}
        claimed = self.claim_many([(n, s) for n, s in slots.items() if table[n].keyed])
        results = [RunResult(n, s, "taken") for n, s in slots.items() if table[n].keyed and n not in claimed]
        runs = [(table[n], s) for n, s in slots.items() if n in claimed or not table[n].keyed]
        results += self._run_claimed(runs, now)
        # Delivery last, whether due or not (it is not keyed); run() skips a job not in the table.
        delivered = self.run("messaging", now)
        if delivered is not None:
            results.append(delivered)
        self.drain()
        return results

    def _run_claimed(self, runs: Sequence[tuple[Job, datetime]], now: datetime) -> list[RunResult]:
        """Each claimed job in turn, the events it caused applied after it; how each ended
        recorded at the end in one transaction (a slot the stop did not reach, because
        something raised, is recorded failed: a later tick takes it again)."""
        results: list[RunResult] = []
        records: dict[str, RunResult] = {}
        try:
            for job, slot in runs:
                result, records[job.name] = self._execute(job, now, slot)
                results.append(result)
                self.drain()
        finally:
            for job, slot in runs:
                records.setdefault(job.name, RunResult(job.name, slot, FAILED, "not run: the stop was interrupted"))
            self._finish_many([r for job, _ in runs if job.keyed for r in [records[job.name]]])
        return results

    def next_due(self, after: datetime) -> datetime | None:
        """The first time after `after` when work other than the fixed intervals is due:
        a job a rule scheduled (a payment retry) or a scheduled rule's cron slot."""
        self.refresh_rule_jobs()
        with self.db.session() as session:
            job_due = session.scalar(select(func.min(automation.ScheduledJob.due_at)).where(
                automation.ScheduledJob.status == "pending", automation.ScheduledJob.due_at > after))
        times = [job_due, *(next_fire(job.trigger, after) for name, job in list(self.jobs.items())
                            if name.startswith("rules:"))]
        return min((t for t in times if t is not None), default=None)  # None: no time known
