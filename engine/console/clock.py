"""The console's clock is the engine's: the stored test clock when the system runs on one
(`billing serve --test-clock`, BILLING_TEST_CLOCK), else the wall clock. "Today" in the
Overview's range, the customer card's next invoice and every date the console stamps follow
it, so a demo or test on a test clock reads the same day in the console as over the API."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from engine.store import Database
from engine.store.clock import stored_time


class EngineClock:
    """The clock of the system on `db`, read-only: the stored test clock's time when the
    database holds one (the API on `--test-clock` stored it and moves it on every advance),
    else `test_clock` (BILLING_TEST_CLOCK, before any engine process stored it), else the
    wall clock. Read again after `ttl` seconds, so a long-lived user (the access tester)
    follows the API's advances. The console never moves it."""

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


def engine_clock(db: Database, test_clock: str = "") -> EngineClock:
    return EngineClock(db, test_clock)


def _start(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"BILLING_TEST_CLOCK: {text!r} is not an ISO time such as 2026-11-01T00:00:00Z") from None
    if start.tzinfo is None:
        raise ValueError(f"BILLING_TEST_CLOCK: {text!r} has no timezone (add Z or +00:00)")
    return start.astimezone(UTC)
