"""The wall-clock scheduler: APScheduler 3 fires the jobs of `Jobs` while this process leads.

APScheduler settings, chosen on purpose:
  coalesce=True            many missed fire times become one run (each job catches up on
                           everything due: the billing run, the retries, a rule sweep)
  misfire_grace_time=None  a late run still runs, however late. The default (1 s) would
                           silently skip a run after a pause of more than a second: a GC
                           stall, a busy pool, the process suspended, a restart
  max_instances=1          a job never overlaps itself
The job store is in memory and private to this process (APScheduler 3 must not share one).
What persists is `scheduler_runs`: on becoming leader, each job's first fire time is put right
after its last recorded slot, so slots missed while no scheduler ran fire at once and, with the
settings above, run once (coalesced) instead of being skipped.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from engine.scheduler.jobs import Job, Jobs, next_fire
from engine.scheduler.leader import Leadership

log = logging.getLogger(__name__)

JOB_DEFAULTS: dict[str, Any] = {"coalesce": True, "misfire_grace_time": None, "max_instances": 1}


class Runner:
    def __init__(self, jobs: Jobs, leadership: Leadership, *, heartbeat: float = 2.0,
                 reload_every: float = 30.0, job_defaults: dict[str, Any] | None = None,
                 workers: int = 4) -> None:
        self.jobs = jobs
        self.leadership = leadership
        self.heartbeat = heartbeat
        self.reload_every = reload_every
        self.job_defaults = dict(JOB_DEFAULTS if job_defaults is None else job_defaults)
        self.workers = workers
        self.scheduler: BackgroundScheduler | None = None
        self.leading = threading.Event()
        self.terms = 0  # how many times this process became leader

    # -- leading -----------------------------------------------------------------------------

    def _start(self) -> None:
        scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults=self.job_defaults,
            executors={"default": ThreadPoolExecutor(self.workers)})
        now = datetime.now(UTC)
        for job in list(self.jobs.jobs.values()):
            self._add(scheduler, job, now)
        scheduler.start()
        self.scheduler = scheduler
        self.terms += 1
        self.leading.set()

    def first_fire(self, job: Job, now: datetime) -> datetime | None:
        """When the job should fire first in this term: right after its last recorded slot
        (in the past if slots were missed: catch-up), else its next fire time; a job never
        run fires now, except a cron rule, which waits for its first slot."""
        last = self.jobs.last_slot(job.name) if job.keyed else None
        if last is not None:
            return next_fire(job.trigger, last)
        if job.catch_up_first:
            return next_fire(job.trigger, now)
        return now

    def _add(self, scheduler: BackgroundScheduler, job: Job, now: datetime) -> None:
        scheduler.add_job(self.jobs.run, job.trigger, args=[job.name], id=job.name, name=job.name,
                          next_run_time=self.first_fire(job, now), replace_existing=True)

    def _stop(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        self.leading.clear()
        if scheduler is not None:
            scheduler.shutdown(wait=False)

    def reload(self) -> None:
        """Rules published: add and remove the rule jobs (cron from the YAML)."""
        added, removed = self.jobs.reload_rules()
        scheduler = self.scheduler
        if scheduler is None:
            return
        now = datetime.now(UTC)
        for name in removed:
            if scheduler.get_job(name) is not None:
                scheduler.remove_job(name)
        for name in added:
            self._add(scheduler, self.jobs.jobs[name], now)
        if added or removed:
            log.info("scheduler: rule jobs added %s, removed %s", added, removed)

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Lead when possible, step down when the lock is lost, until `stop` is set."""
        since_reload = 0.0
        try:
            while not stop.is_set():
                if self.scheduler is None:
                    if self.leadership.acquire():
                        try:
                            self.jobs.reload_rules()
                        except Exception:
                            log.exception("scheduler: loading the rules failed")
                        self._start()
                elif not self.leadership.check():
                    self._stop()
                since_reload += self.heartbeat
                if self.scheduler is not None and since_reload >= self.reload_every:
                    since_reload = 0.0
                    try:
                        self.reload()
                    except Exception:
                        log.exception("scheduler: reloading the rules failed")
                stop.wait(self.heartbeat)
        finally:
            self._stop()
            self.leadership.release()
