"""The database's count of committed outbox writes (engine.store.OutboxWrites), which lets a
test clock's drains skip the outbox when this process wrote nothing to it (docs/events.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.events.inprocess import InProcessBus
from engine.events.registry import HandlerRegistry
from engine.store import Database, add_event, add_events

NOW = datetime(2026, 3, 1, tzinfo=UTC)
ENGINE = Path(__file__).resolve().parents[2] / "engine"


def test_each_way_of_writing_the_outbox_is_counted_once_committed(sqlite_db: Database) -> None:
    writes = sqlite_db.outbox_writes
    start = writes.committed
    with sqlite_db.session() as s:
        add_event(s, "a.b", None, {}, time=NOW)
    assert writes.committed == start + 1
    with sqlite_db.session() as s:
        add_events(s, [("a.b", None, {}, NOW), ("a.c", None, {}, NOW)])
    assert writes.committed == start + 2
    with sqlite_db.session() as s:
        s.execute(text("SELECT 1"))  # a transaction that wrote none
    assert writes.committed == start + 2
    with pytest.raises(RuntimeError), sqlite_db.session() as s:
        add_event(s, "a.b", None, {}, time=NOW)
        raise RuntimeError("rolled back")
    assert writes.committed == start + 2


def test_a_drain_written_looks_again_only_after_a_write(sqlite_db: Database) -> None:
    seen: list[str] = []
    registry = HandlerRegistry()
    registry.register("t", "a.*", lambda _s, env: seen.append(env.type))
    bus = InProcessBus(sqlite_db, registry)
    assert bus.drain() == 0
    polls: list[int] = []
    original = bus.dispatch_once
    bus.dispatch_once = lambda limit=None: polls.append(1) or original(limit)  # type: ignore[method-assign]
    assert bus.drain_written() == 0 and polls == []  # nothing written since the empty drain
    with sqlite_db.session() as s:
        add_event(s, "a.b", None, {}, time=NOW)
    assert bus.drain_written() == 1 and seen == ["a.b"]
    assert bus.drain_written() == 0 and len(polls) == 2  # the row, then the empty look


def test_a_raw_sql_writer_of_the_outbox_says_so() -> None:
    """SQLAlchemy's events do not see a driver cursor: such a writer calls note_outbox_write."""
    for path in ENGINE.rglob("*.py"):
        text = path.read_text()
        if "INSERT INTO outbox_events" in text:
            assert "note_outbox_write(" in text, path
