"""The scheduler: period closes, payment retries and collection, message delivery and every
rule with `schedule` + `for_each`, on the engine's clock, with exactly one active scheduler
across processes (a PostgreSQL advisory lock) and every run keyed by (job, time slot).

    scheduler.install(system)                  # test clock: run_due on every clock stop
    scheduler.advance(system, target)          # a test clock through every due time
    scheduler.run_scheduler(settings, stop)    # `billing scheduler` (or in-process)

See docs/automation.md.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from engine import automation, messaging
from engine.clock import Clock, SystemClock, TestClock
from engine.scheduler.jobs import (
    EPOCH,
    CronError,
    Job,
    Jobs,
    RunResult,
    cron_trigger,
    interval_trigger,
    next_fire,
    slot_at,
)
from engine.scheduler.leader import AdvisoryLock, Leadership, SingleProcess, leadership_for, lock_key
from engine.scheduler.models import JobRun
from engine.scheduler.runner import JOB_DEFAULTS, Runner
from engine.store import Database

log = logging.getLogger(__name__)

__all__ = [
    "EPOCH",
    "JOB_DEFAULTS",
    "AdvisoryLock",
    "CronError",
    "Job",
    "JobRun",
    "Jobs",
    "Leadership",
    "RunResult",
    "Runner",
    "SingleProcess",
    "advance",
    "cron_trigger",
    "install",
    "interval_trigger",
    "jobs_for",
    "leadership_for",
    "lock_key",
    "next_fire",
    "register",
    "run_due",
    "run_scheduler",
    "slot_at",
]


def _payments_configured(system: Any) -> bool:
    """Whether the system collects payments (it owns a payment service); a bare database
    has none."""
    return system is not None and getattr(system, "payments", None) is not None


def _channels(settings: Any, system: Any = None) -> messaging.Channels:
    smtp = str(getattr(settings, "smtp_url", "") or "")
    attachments = system.attachments() if hasattr(system, "attachments") else None
    return messaging.Channels.from_settings(smtp_url=smtp, attachments=attachments)


def jobs_for(target: Any, clock: Clock | None = None, *, channels: messaging.Channels | None = None) \
        -> Jobs:
    """The Jobs of a System (made once and kept on it) or of a bare Database."""
    existing = getattr(target, "scheduler_jobs", None)
    if isinstance(existing, Jobs):
        return existing
    if isinstance(target, Database):
        clock = clock or SystemClock()
        auto = automation.Automation(target, clock)
        auto.sync()
        from engine.config import get_settings

        return Jobs(target, clock, auto, channels or _channels(get_settings()), None,
                    _payments_configured(None))
    system = target
    jobs = Jobs(system.db, clock or system.clock, automation.for_system(system),
                channels or _channels(system.settings, system), system, _payments_configured(system))
    system.scheduler_jobs = jobs
    return jobs


def run_due(system_or_db: Any, clock: Clock | None, now: datetime) -> list[RunResult]:
    """Run everything due at `now` whose slot has not run yet (the test clock's path:
    `system.due_work.append(lambda now: run_due(system, system.clock, now))`)."""
    return jobs_for(system_or_db, clock).run_due(now)


def register(registry: Any, system: Any) -> None:
    """Nothing to subscribe: rule reloads are polled by the runner (rules.published reloads
    the automation handler's runtime)."""
    jobs_for(system)


def install(system: Any) -> None:
    """Automation plus the scheduler's due work on the system's clock stops."""
    automation.install(system)
    jobs = jobs_for(system)

    def due(now: datetime) -> None:
        jobs.run_due(now)

    due.__qualname__ = "scheduler.run_due"
    system.due_work.append(due)


def advance(system: Any, target: datetime) -> dict[str, Any]:
    """Move a system on a test clock to `target`, stopping at every time work falls due on
    the way (payment retries, cron slots of scheduled rules), not only at period closes."""
    clock = system.clock
    if not isinstance(clock, TestClock):
        raise RuntimeError("not on a test clock")
    jobs = jobs_for(system)
    # What earlier calls set off is applied first, at the time it happened: in the
    # multi-process shape a worker may still be scheduling the retry of a declined charge.
    system.drain()
    stops = 0
    while True:
        nxt = jobs.next_due(clock.now())
        if nxt is None or nxt >= target:
            break
        system.advance_to(nxt)
        stops += 1
    system.advance_to(target)
    # What the last stop's events asked to say (created after that stop's delivery) goes
    # out now: the advance returns with its messages delivered.
    jobs.run("messaging", clock.now())
    system.drain()
    _wait_for_deliveries(system.db)
    return {"stops": stops + 1}


def _wait_for_deliveries(db: Database, timeout: float = 30.0) -> None:
    """Messages another run (the scheduler's heartbeat, another process) is sending right now
    are part of the work due: wait until they are recorded (a lease bounds a dead run's)."""
    deadline = time.monotonic() + timeout
    while messaging.deliveries_in_flight(db) and time.monotonic() < deadline:
        time.sleep(0.02)


def run_scheduler(settings: Any, stop_event: threading.Event, *, system: Any = None,
                  heartbeat: float = 2.0, reload_every: float = 30.0) -> None:
    """`billing scheduler` (alone) or the embedded default (in a thread, given the system).
    Leads when it holds the lock; returns when `stop_event` is set. On a test clock nothing
    runs by wall time (the clock's advance runs the work) except message delivery."""
    if system is not None:
        db, clock = system.db, system.clock
    else:
        db = Database(settings.database_url)
        clock = SystemClock()
    jobs = jobs_for(system if system is not None else db, clock)
    if isinstance(clock, TestClock):
        while not stop_event.is_set():
            try:
                jobs.run("messaging", clock.now())
            except Exception:
                log.exception("message delivery failed")
            stop_event.wait(heartbeat)
        return
    runner = Runner(jobs, leadership_for(db.url), heartbeat=heartbeat, reload_every=reload_every)
    runner.run(stop_event)
