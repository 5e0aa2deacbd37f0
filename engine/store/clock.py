"""The stored test clock: one row every process of a system reads.

`billing serve --test-clock`, `billing worker` and `billing scheduler` each build their own
clock; a `TestClock` in memory would let the API move time while the workers stay behind.
With `BILLING_TEST_CLOCK` set, every process uses a `StoredClock` on the same database
instead: the first process stores the start time, `set` (the API's clock advance) writes the
row, and every reader sees the new time within `ttl` seconds of wall time. The process that
moves the clock sees it at once; with `shared=True`, `set` waits `ttl` after each move so the
others do too before any work of that instant runs.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import Integer, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from engine.clock import TestClock, ensure_aware
from engine.store.base import Base
from engine.store.database import Database

ROW = 1


class StoredTestClock(Base):
    __tablename__ = "test_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    now: Mapped[datetime]


class StoredClock(TestClock):
    """A TestClock kept in the database: `now()` is read at most once per `ttl` seconds."""

    def __init__(self, db: Database, start: datetime, *, ttl: float = 0.02, shared: bool = False) -> None:
        super().__init__(start)
        self._db = db
        self._ttl = ttl
        # Other processes read it too (a broker-backed system): `set` waits out their cache.
        self._shared = shared
        self._read_at = float("-inf")
        self._io = threading.Lock()
        self._store_start(start.astimezone(UTC))

    @property
    def ttl(self) -> float:
        return self._ttl

    def _store_start(self, start: datetime) -> None:
        """The first process stores the start; later ones (and restarts) keep the stored time:
        the data was written at that time and the clock never goes back."""
        try:
            with self._db.session() as session:
                if session.get(StoredTestClock, ROW) is None:
                    session.add(StoredTestClock(id=ROW, now=start))
        except IntegrityError:  # another process stored it first
            pass
        stored = self._read()
        if stored is not None:  # the stored time is the system's, whatever this start said
            with self._lock:
                self._now = stored
        self._read_at = time.monotonic()

    def _read(self) -> datetime | None:
        with self._db.read_session() as session:
            return session.scalar(select(StoredTestClock.now).where(StoredTestClock.id == ROW))

    def _refresh(self) -> None:
        stored = self._read()
        if stored is not None:
            with self._lock:  # a read that began before this process's own `set` is older
                self._now = max(self._now, stored)
        self._read_at = time.monotonic()

    def now(self) -> datetime:
        # Never wait for another thread's read: a caller may hold a write transaction that
        # thread is waiting for. The cached time is at most `ttl` old.
        if time.monotonic() - self._read_at >= self._ttl and self._io.acquire(blocking=False):
            try:
                self._refresh()
            finally:
                self._io.release()
        return super().now()

    def set(self, when: datetime) -> None:
        when = ensure_aware(when, "when")
        # The stored row decides (another process may have moved it): checked and written in
        # one transaction, holding no lock of ours while it waits for the database's.
        with self._db.session() as session:
            row = session.get(StoredTestClock, ROW, with_for_update=True)
            if row is None:
                session.add(StoredTestClock(id=ROW, now=when))
            elif when < row.now:
                raise ValueError(f"the clock cannot go back from {row.now.isoformat()}")
            else:
                session.execute(update(StoredTestClock).where(StoredTestClock.id == ROW).values(now=when))
        with self._lock:
            self._now = max(self._now, when)
        self._read_at = time.monotonic()
        if self._shared:
            # Every other process's cached reading has expired when this returns: work of the
            # new instant sees the new time everywhere (`ttl`, 20 ms by default).
            time.sleep(self._ttl)


def stored_time(db: Database) -> datetime | None:
    """The stored test clock's time, or None when this database never ran on a test clock
    (a process that only reads the time, such as the console, uses the system's clock then)."""
    with db.read_session() as session:
        return session.scalar(select(StoredTestClock.now).where(StoredTestClock.id == ROW))


class EngineClock:
    """The clock of the system on `db`, read-only: the stored test clock's time when the
    database holds one (the API on `--test-clock` stored it and moves it on every advance),
    else `test_clock` (BILLING_TEST_CLOCK, before any engine process stored it), else the
    wall clock. Read again after `ttl` seconds, so a long-lived user (the access tester)
    follows the API's advances; the sandbox provider reads it on every stamp (`ttl=0`).
    Readers never move it."""

    def __init__(self, db: Database, test_clock: str = "", *, ttl: float = 0.5) -> None:
        self._db = db
        self._start = _start(test_clock) if test_clock else None
        self._ttl = ttl
        self._read_at = float("-inf")
        self._stored: datetime | None = None

    def now(self) -> datetime:
        if time.monotonic() - self._read_at >= self._ttl:
            self._stored = stored_time(self._db)
            self._read_at = time.monotonic()
        return self._stored or self._start or datetime.now(UTC)


def _start(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"BILLING_TEST_CLOCK: {text!r} is not an ISO time such as 2026-11-01T00:00:00Z") from None
    if start.tzinfo is None:
        raise ValueError(f"BILLING_TEST_CLOCK: {text!r} has no timezone (add Z or +00:00)")
    return start.astimezone(UTC)
