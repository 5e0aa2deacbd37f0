"""The CLI's "today" for commands that run without a system (quote, simulate, usage reads)."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.config import get_settings


def cli_now() -> datetime:
    """BILLING_TEST_CLOCK when set (a demo or test database lives on it), else the wall clock:
    the one place a command without a system reads the time."""
    raw = get_settings().test_clock
    return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else datetime.now(UTC)
