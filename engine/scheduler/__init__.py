"""The scheduler: period closes, payment retries and collection, message delivery and every
rule with `schedule` + `for_each`, on the engine's clock, with exactly one active scheduler
across processes (a PostgreSQL advisory lock) and every run keyed by (job, time slot).

    jobs = Jobs(db, clock, automation, billing=..., deliver=...)  # engine/system/scheduling.py
    jobs.run_due(now)                              # test clock: on every clock stop
    scheduler.advance(jobs, clock, target, ...)    # a test clock through every due time
    scheduler.run_scheduler(jobs, stop)            # `billing scheduler` (or in-process)

See docs/automation.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.clock import TestClock
from engine.scheduler.jobs import (
    EPOCH,
    CronError,
    Job,
    Jobs,
    RunResult,
    Work,
    cron_trigger,
    interval_trigger,
    next_fire,
    slot_at,
)
from engine.scheduler.leader import AdvisoryLock, Leadership, SingleProcess, leadership_for, lock_key
from engine.scheduler.models import JobRun
from engine.scheduler.runner import JOB_DEFAULTS, Runner

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
    "Work",
    "advance",
    "cron_trigger",
    "interval_trigger",
    "leadership_for",
    "lock_key",
    "next_fire",
    "run_scheduler",
    "slot_at",
]


def advance(jobs: Jobs, clock: TestClock, target: datetime, *, step: Callable[[datetime], object],
            drain: Callable[[], object], in_flight: Callable[[], int]) -> dict[str, Any]:
    """Move a test clock to `target`, stopping at every time work falls due on the way
    (payment retries, cron slots of scheduled rules), not only at period closes. `step`
    moves the clock to a time through the billing runs due on the way (the system's clock
    advance); `drain` applies the events the work caused (the system's); `in_flight` counts
    the messages another run is sending right now (messaging's)."""
    # What earlier calls set off is applied first, at the time it happened: in the
    # multi-process shape a worker may still be scheduling the retry of a declined charge.
    drain()
    stops = 0
    while True:
        nxt = jobs.next_due(clock.now())
        if nxt is None or nxt >= target:
            break
        step(nxt)
        stops += 1
    step(target)
    # What the last stop's events asked to say (created after that stop's delivery) goes
    # out now: the advance returns with its messages delivered.
    jobs.run("messaging", clock.now())
    drain()
    _wait_for_deliveries(in_flight)
    return {"stops": stops + 1}


def _wait_for_deliveries(in_flight: Callable[[], int], timeout: float = 30.0) -> None:
    """Messages another run (the scheduler's heartbeat, another process) is sending right now
    are part of the work due: wait until they are recorded (a lease bounds a dead run's)."""
    deadline = time.monotonic() + timeout
    while in_flight() and time.monotonic() < deadline:
        time.sleep(0.02)


def run_scheduler(jobs: Jobs, stop_event: threading.Event, *, heartbeat: float = 2.0,
                  reload_every: float = 30.0) -> None:
    """`billing scheduler` (alone) or the embedded default (in a thread): the jobs of one
    system. Leads when it holds the lock; returns when `stop_event` is set. On a test clock
    nothing runs by wall time (the clock's advance runs the work) except message delivery."""
    if isinstance(jobs.clock, TestClock):
        while not stop_event.is_set():
            try:
                jobs.run("messaging", jobs.clock.now())
            except Exception:
                log.exception("message delivery failed")
            stop_event.wait(heartbeat)
        return
    runner = Runner(jobs, leadership_for(jobs.db.url), heartbeat=heartbeat, reload_every=reload_every)
    runner.run(stop_event)
