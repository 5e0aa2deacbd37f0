"""Injectable time. Every piece of the engine asks a Clock, never `datetime.now()`.

A TestClock lets tests and the simulator move a whole system through months in seconds.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """One instant: what a piece of work due at a time runs on."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


class TestClock:
    """A clock that only moves when told to. Thread-safe; never goes backwards."""

    __test__ = False  # not a pytest test class

    def __init__(self, start: datetime) -> None:
        self._now = ensure_aware(start, "start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        when = ensure_aware(when, "when")
        with self._lock:
            if when < self._now:
                raise ValueError(f"the clock cannot go back from {self._now.isoformat()}")
            self._now = when


def ensure_aware(value: datetime, field: str = "time") -> datetime:
    """Reject naive timestamps: a time without a zone means different instants to different
    servers, which is how usage lands in the wrong period."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field}: timestamp has no timezone (add Z or +00:00)")
    return value.astimezone(UTC)
