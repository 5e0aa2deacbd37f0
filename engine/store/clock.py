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

from engine.clock import TestClock
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
        Base.metadata.create_all(db.engine, tables=[StoredTestClock.__table__])  # type: ignore[list-item]
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
        self._refresh()

    def _refresh(self) -> None:
        with self._db.read_session() as session:
            stored = session.scalar(select(StoredTestClock.now).where(StoredTestClock.id == ROW))
        if stored is not None:  # the stored time is the system's: it only moves forward (`set`)
            with self._lock:
                self._now = stored
        self._read_at = time.monotonic()

    def now(self) -> datetime:
        if time.monotonic() - self._read_at >= self._ttl:
            with self._io:
                if time.monotonic() - self._read_at >= self._ttl:
                    self._refresh()
        return super().now()

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("a timestamp without a timezone is ambiguous")
        when = when.astimezone(UTC)
        with self._io:
            self._refresh()
            super().set(when)  # raises when it would go back
            with self._db.session() as session:
                session.execute(update(StoredTestClock).where(StoredTestClock.id == ROW).values(now=when))
            self._read_at = time.monotonic()
        if self._shared:
            # Every other process's cached reading has expired when this returns: work of the
            # new instant sees the new time everywhere (`ttl`, 20 ms by default).
            time.sleep(self._ttl)
