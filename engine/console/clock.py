"""The console's clock is the engine's: the stored test clock when the system runs on one
(`billing serve --test-clock`, BILLING_TEST_CLOCK), else the wall clock. "Today" in the
Overview's range, the customer card's next invoice and every date the console stamps follow
it, so a demo or test on a test clock reads the same day in the console as over the API."""

from __future__ import annotations

from engine.store import Database
from engine.store.clock import EngineClock

__all__ = ["EngineClock", "engine_clock"]


def engine_clock(db: Database, test_clock: str = "") -> EngineClock:
    return EngineClock(db, test_clock)
