"""The CLI's "today" for commands that run without a system (quote, simulate, usage reads)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from engine.clock import Clock
from engine.config import Settings, get_settings

if TYPE_CHECKING:
    from engine.store import Database


def cli_now() -> datetime:
    """BILLING_TEST_CLOCK when set (a demo or test database lives on it), else the wall clock:
    the one place a command without a system reads the time."""
    raw = get_settings().test_clock
    return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else datetime.now(UTC)


def engine_clock(db: Database) -> Clock:
    """The clock of the system on `db`, for a command that runs without a system (publish,
    rollback, user add): the stored test clock when the database holds one, else
    BILLING_TEST_CLOCK, else the wall clock; read on every stamp."""
    from engine.store.clock import EngineClock

    return EngineClock(db, get_settings().test_clock, ttl=0)


def sandbox_clock(settings: Settings) -> Clock | None:
    """The sandbox provider's clock: with BILLING_TEST_CLOCK set, the engine's stored test clock,
    read on every stamp, as a provider's test clock follows the account's (Stripe test clocks):
    its capture times, which date payments in the journal, are then the engine's days rather
    than the wall clock's. None: its own wall clock."""
    if not settings.test_clock:
        return None
    from engine.store import database_of
    from engine.store.clock import EngineClock

    return EngineClock(database_of(settings), settings.test_clock, ttl=0)
