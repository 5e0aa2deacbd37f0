"""The console's clock is the engine's: the stored test clock when the system runs on one
(`billing serve --test-clock`, BILLING_TEST_CLOCK), else the wall clock. "Today" in the
Overview's range, the customer card's next invoice and every date the console stamps follow
it, so a demo or test on a test clock reads the same day in the console as over the API."""

from __future__ import annotations

from datetime import datetime

from engine.clock import Clock, FixedClock, SystemClock
from engine.store import Database
from engine.store.clock import stored_time


def engine_clock(db: Database, test_clock: str = "") -> Clock:
    """The clock of the system on `db`, read once: the stored test clock's time when the
    database holds one (the API on `--test-clock` stored it, and moves it on every advance),
    else `test_clock` (BILLING_TEST_CLOCK, before any engine process stored it), else the wall
    clock. The console only reads it: the API's clock advance is what moves a test clock."""
    stored = stored_time(db)
    if stored is not None:
        return FixedClock(stored)
    if test_clock:
        return FixedClock(_start(test_clock))
    return SystemClock()


def _start(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"BILLING_TEST_CLOCK: {text!r} is not an ISO time such as 2026-11-01T00:00:00Z") from None
    if start.tzinfo is None:
        raise ValueError(f"BILLING_TEST_CLOCK: {text!r} has no timezone (add Z or +00:00)")
    return start
