"""The scheduler: slots, (job, slot) keys, the advisory-lock leader on PostgreSQL, catch-up
of missed slots with the chosen APScheduler settings, and rule jobs from published YAML."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from engine import messaging, scheduler
from engine.clock import SystemClock, TestClock
from engine.rules import RulesRuntime, load_ruleset_text
from engine.scheduler import AdvisoryLock, Job, JobRun, Jobs, Runner, SingleProcess
from engine.store import Database
from engine.system import build_automation, scheduler_jobs
from tests.concurrency import at_once


def make_jobs(db: Database, clock: Any = None, owner: str = "test") -> Jobs:
    clock = clock or SystemClock()
    auto = build_automation(db, clock, RulesRuntime(clock, engine="python"))
    jobs = scheduler_jobs(db, clock, auto, messaging.Channels([messaging.InAppChannel()]), owner=owner)
    return jobs


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.slots: list[datetime] = []
        self.lock = threading.Lock()
        self.delay = delay

    def __call__(self, now: datetime, slot: datetime) -> None:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.slots.append(slot)


def only(jobs: Jobs, job: Job) -> Jobs:
    jobs.jobs = {job.name: job}
    jobs.refresh_rule_jobs = lambda: False  # type: ignore[method-assign]
    return jobs


# -- slots -----------------------------------------------------------------------------------


def test_slots_of_cron_and_interval() -> None:
    cron = scheduler.cron_trigger("0 6 * * *")
    at = datetime(2026, 3, 8, 5, 59, tzinfo=UTC)
    assert scheduler.slot_at(cron, at) == datetime(2026, 3, 7, 6, tzinfo=UTC)
    assert scheduler.slot_at(cron, at + timedelta(minutes=1)) == datetime(2026, 3, 8, 6, tzinfo=UTC)
    assert scheduler.next_fire(cron, datetime(2026, 3, 8, 6, tzinfo=UTC)) == datetime(2026, 3, 9, 6, tzinfo=UTC)
    monthly = scheduler.cron_trigger("30 2 1 * *")
    assert scheduler.slot_at(monthly, at) == datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    every = scheduler.interval_trigger(seconds=30)
    assert scheduler.slot_at(every, datetime(2026, 3, 8, 5, 0, 59, tzinfo=UTC)) == \
        datetime(2026, 3, 8, 5, 0, 30, tzinfo=UTC)
    with pytest.raises(scheduler.CronError, match="schedule '61 \\* \\* \\* \\*'"):
        scheduler.cron_trigger("61 * * * *")
    with pytest.raises(scheduler.CronError, match="fields"):
        scheduler.cron_trigger("0 6 * *")


@pytest.mark.parametrize(("weekday", "expected"), [
    ("1", "2026-03-02"), ("0", "2026-03-08"), ("7", "2026-03-08"), ("sat", "2026-03-07"),
    ("1-5", "2026-03-02"), ("6,0", "2026-03-07"), ("*/3", "2026-03-04"),
])
def test_weekdays_are_crontab_weekdays(weekday: str, expected: str) -> None:
    """Crontab counts weekdays from Sunday = 0; APScheduler 3 from Monday = 0."""
    trigger = scheduler.cron_trigger(f"0 9 * * {weekday}")
    sunday = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    fire = scheduler.next_fire(trigger, sunday)
    assert fire is not None and fire.date().isoformat() == expected


def test_a_slot_runs_once_however_often_it_is_asked(sqlite_db: Database) -> None:
    rec = Recorder()
    jobs = only(make_jobs(sqlite_db), Job("tick", scheduler.cron_trigger("0 * * * *"), rec))
    t = datetime(2026, 3, 8, 10, 15, tzinfo=UTC)
    results = [jobs.run("tick", t), jobs.run("tick", t + timedelta(minutes=30))]
    assert [r.status for r in results if r] == ["done", "taken"]
    assert jobs.due(t + timedelta(minutes=44)) == []
    assert jobs.due(t + timedelta(minutes=45)) == ["tick"]
    assert rec.slots == [datetime(2026, 3, 8, 10, tzinfo=UTC)]


def test_a_failed_slot_is_taken_again_and_then_done(sqlite_db: Database) -> None:
    calls = []

    def flaky(now: datetime, slot: datetime) -> None:
        calls.append(slot)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")

    jobs = only(make_jobs(sqlite_db), Job("flaky", scheduler.cron_trigger("0 * * * *"), flaky))
    t = datetime(2026, 3, 8, 10, 15, tzinfo=UTC)
    assert jobs.run("flaky", t).status == "failed"  # type: ignore[union-attr]
    assert jobs.run("flaky", t).status == "done"  # type: ignore[union-attr]
    assert jobs.run("flaky", t).status == "taken"  # type: ignore[union-attr]
    with sqlite_db.session() as s:
        row = s.scalars(select(JobRun)).one()
    assert (row.status, row.attempts) == ("done", 2)


# -- two schedulers, PostgreSQL ----------------------------------------------------------------


def test_two_schedulers_on_one_slot_run_it_once(pg_db: Database) -> None:
    """Failover overlap: both believe they lead and fire the same slots at once."""
    rec = Recorder(delay=0.05)
    a = only(make_jobs(pg_db, owner="a"), Job("bill", scheduler.cron_trigger("* * * * *"), rec))
    b = only(make_jobs(pg_db, owner="b"), Job("bill", scheduler.cron_trigger("* * * * *"), rec))
    base = datetime(2026, 3, 8, 10, tzinfo=UTC)
    barrier = threading.Barrier(8)

    def fire(jobs: Jobs, minute: int) -> None:
        barrier.wait()
        jobs.run("bill", base + timedelta(minutes=minute, seconds=5))

    for minute in range(5):
        threads = [threading.Thread(target=fire, args=(j, minute)) for j in (a, b, a, b, a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(rec.slots) == [base + timedelta(minutes=m) for m in range(5)]


@pytest.fixture
def pg_url_db(pg_url: str, pg_db: Database) -> Iterator[tuple[str, Database]]:
    yield pg_url, pg_db


def test_one_leader_among_schedulers_and_failover_runs_no_slot_twice(
        pg_url_db: tuple[str, Database]) -> None:
    url, db = pg_url_db
    rec = Recorder()
    runners = []
    for owner in ("one", "two"):
        jobs = only(make_jobs(db, owner=owner), Job("tick", scheduler.interval_trigger(seconds=1), rec))
        runners.append(Runner(jobs, AdvisoryLock(url, "billing-test-leader"), heartbeat=0.2))
    stops = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=r.run, args=(s,), daemon=True) for r, s in zip(runners, stops, strict=True)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 10
        while not any(r.leading.is_set() for r in runners) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.5)
        leaders = [r for r in runners if r.leading.is_set()]
        assert len(leaders) == 1
        leader = leaders[0]
        follower = runners[1 - runners.index(leader)]
        # Kill the leader's lock connection from outside: it must step down, the other lead.
        pid = leader.leadership.backend_pid()  # type: ignore[attr-defined]
        admin = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            conn.commit()
        admin.dispose()
        deadline = time.monotonic() + 10
        while not follower.leading.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert follower.leading.is_set()
        time.sleep(2.5)
        assert sum(r.leading.is_set() for r in runners) == 1
    finally:
        for s in stops:
            s.set()
        for t in threads:
            t.join(10)
    counts = Counter(rec.slots)
    assert counts and max(counts.values()) == 1, counts  # no slot ran twice
    assert len(counts) >= 4
    with db.session() as session:
        owners = set(session.scalars(select(JobRun.owner)))
    assert owners == {"one", "two"}  # both led, one after the other


# -- catch-up after downtime -------------------------------------------------------------------


def _catch_up(db: Database, job_defaults: dict[str, Any] | None) -> tuple[Recorder, datetime]:
    rec = Recorder()
    jobs = only(make_jobs(db), Job("minutely", scheduler.cron_trigger("* * * * *"), rec))
    now = datetime.now(UTC)
    # The last run was three hours ago: 180 slots were missed while no scheduler ran.
    last = scheduler.slot_at(jobs.jobs["minutely"].trigger, now - timedelta(hours=3))
    assert last is not None
    with db.session() as s:
        s.add(JobRun(job="minutely", slot=last, status="done", owner="old", started_at=last))
    runner = Runner(jobs, SingleProcess(), heartbeat=0.1, job_defaults=job_defaults)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(1.5)
    stop.set()
    thread.join(10)
    return rec, now


def test_missed_slots_are_caught_up_once(sqlite_db: Database) -> None:
    rec, started = _catch_up(sqlite_db, None)  # our settings: coalesce, no misfire grace limit
    missed = [s for s in rec.slots if s <= started]
    assert missed == [scheduler.slot_at(scheduler.cron_trigger("* * * * *"), started)]


def test_apscheduler_defaults_would_skip_the_missed_slots(sqlite_db: Database) -> None:
    """The contrast that motivates the settings: misfire_grace_time=1 drops the catch-up."""
    rec, started = _catch_up(sqlite_db, {"coalesce": True, "misfire_grace_time": 1})
    assert [s for s in rec.slots if s <= started - timedelta(seconds=2)] == []


# -- on the test clock ---------------------------------------------------------------------------


RULES = """
ruleset: reminders
rules:
  - id: tag-early
    schedule: "0 9 * * 1"
    for_each: customer
    then:
      - tag: {add: [monday]}
"""


def test_rule_jobs_follow_the_published_rules_and_the_test_clock(sqlite_db: Database) -> None:
    from engine import sales

    clock = TestClock(datetime(2026, 3, 1, tzinfo=UTC))  # a Sunday
    jobs = make_jobs(sqlite_db, clock)
    assert not [n for n in jobs.jobs if n.startswith("rules:")]
    jobs.auto.runtime.install(load_ruleset_text(RULES, "reminders.yaml"), 1)
    with sqlite_db.session() as s:
        sales.create_customer(s, {"id": "cus_m", "email": "m@example.com", "name": "M"}, clock=clock)
    assert jobs.next_due(clock.now()) == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert "rules:customer:0 9 * * 1" in jobs.jobs
    jobs.run_due(datetime(2026, 3, 2, 8, tzinfo=UTC))
    with sqlite_db.session() as s:
        assert sales.get_customer(s, "cus_m")["tags"] == []
    results = jobs.run_due(datetime(2026, 3, 2, 9, tzinfo=UTC))
    assert any(r.job == "rules:customer:0 9 * * 1" and r.status == "done" for r in results)
    with sqlite_db.session() as s:
        assert sales.get_customer(s, "cus_m")["tags"] == ["monday"]
    # A new version with another schedule replaces the job.
    jobs.auto.runtime.install(load_ruleset_text(RULES.replace("0 9 * * 1", "0 10 * * 1"), "r.yaml"), 2)
    jobs.refresh_rule_jobs()
    assert [n for n in jobs.jobs if n.startswith("rules:")] == ["rules:customer:0 10 * * 1"]


# -- a clock stop's claims -------------------------------------------------------------------------


def _hourly(jobs: Jobs, names: list[str], rec: Recorder) -> Jobs:
    jobs.jobs = {n: Job(n, scheduler.cron_trigger("0 * * * *"), rec) for n in names}
    jobs.refresh_rule_jobs = lambda: False  # type: ignore[method-assign]
    return jobs


def _transactions(db: Database, work: Any) -> int:
    begun: list[str] = []

    def count(_conn: Any) -> None:
        begun.append("begin")

    sa.event.listen(db.engine, "begin", count)
    try:
        work()
    finally:
        sa.event.remove(db.engine, "begin", count)
    return len(begun)


def test_a_stop_claims_its_jobs_and_records_their_ends_in_one_transaction_each(sqlite_db: Database) -> None:
    """A test clock stops hundreds of times a simulated year: what a stop costs does not grow
    with its jobs (one claim, one finish, besides reading the slots)."""
    t = datetime(2026, 3, 8, 10, 15, tzinfo=UTC)
    one = _hourly(make_jobs(sqlite_db, owner="a"), ["j0"], Recorder())
    five = _hourly(make_jobs(sqlite_db, owner="b"), [f"k{n}" for n in range(5)], Recorder())
    assert _transactions(sqlite_db, lambda: one.run_due(t)) == _transactions(sqlite_db, lambda: five.run_due(t))
    with sqlite_db.session() as s:
        assert sorted((r.job, r.status) for r in s.scalars(select(JobRun))) == \
            [("j0", "done"), *((f"k{n}", "done") for n in range(5))]


def test_a_job_that_fails_in_a_stop_is_recorded_failed_and_can_be_taken_again_the_others_not(
        sqlite_db: Database) -> None:
    calls: list[str] = []

    def flaky(now: datetime, slot: datetime) -> None:
        calls.append("flaky")
        if calls.count("flaky") == 1:
            raise RuntimeError("database hiccup")

    rec = Recorder()
    jobs = _hourly(make_jobs(sqlite_db), ["steady"], rec)
    jobs.jobs["flaky"] = Job("flaky", scheduler.cron_trigger("0 * * * *"), flaky)
    t = datetime(2026, 3, 8, 10, 15, tzinfo=UTC)
    assert sorted((r.job, r.status) for r in jobs.run_due(t) if r.job != "messaging") == \
        [("flaky", "failed"), ("steady", "done")]
    with sqlite_db.session() as s:
        assert sorted((r.job, r.status) for r in s.scalars(select(JobRun))) == [("flaky", "failed"), ("steady", "done")]
    assert [jobs.run(n, t).status for n in ("flaky", "steady")] == ["done", "taken"]  # type: ignore[union-attr]
    assert calls == ["flaky", "flaky"] and len(rec.slots) == 1


def test_two_schedulers_stopping_at_once_run_each_slot_of_the_stop_once(pg_db: Database) -> None:
    rec = Recorder(delay=0.02)
    names = ["a", "b", "c"]
    one = _hourly(make_jobs(pg_db, owner="one"), names, rec)
    two = _hourly(make_jobs(pg_db, owner="two"), names, rec)
    base = datetime(2026, 3, 8, 10, 15, tzinfo=UTC)
    for hour in range(3):
        turn = iter([one, two])
        errors = at_once(lambda: next(turn).run_due(base + timedelta(hours=hour)))  # noqa: B023
        assert errors == []
    assert sorted(Counter(rec.slots).values()) == [3, 3, 3]  # three jobs a slot, each slot once each
    with pg_db.session() as s:
        assert {(r.job, r.status) for r in s.scalars(select(JobRun))} == {(n, "done") for n in names}
