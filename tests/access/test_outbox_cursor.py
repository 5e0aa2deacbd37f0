"""The outbox follower's cursor: every wanted row once, including one that commits after a
later row (PostgreSQL takes `seq` at INSERT, not at COMMIT)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from engine.access.outbox_cursor import OutboxCursor
from engine.store import Database, OutboxEvent, add_event

NOW = datetime(2026, 11, 1, tzinfo=UTC)
WANTED = OutboxEvent.type.like("subscription.%")


def _head(db: Database) -> int:
    with db.read_session() as s:
        return int(s.scalar(select(func.max(OutboxEvent.seq))) or 0)


def _poll(db: Database, cursor: OutboxCursor) -> list[str | None]:
    with db.read_session() as s:
        return [row.customer_id for row in cursor.poll(s, WANTED)]


def test_a_row_committed_after_a_later_one_is_still_read(pg_db: Database) -> None:
    cursor = OutboxCursor(_head(pg_db))
    slow = pg_db._factory()  # a transaction that took its seq first and commits last
    add_event(slow, "subscription.changed", "late", {}, time=NOW)
    slow.flush()
    with pg_db.session() as s:
        add_event(s, "subscription.changed", "early", {}, time=NOW)
    assert _poll(pg_db, cursor) == ["early"]
    assert len(cursor.gaps) == 1  # the seq it jumped over
    slow.commit()
    slow.close()
    assert _poll(pg_db, cursor) == ["late"]
    assert cursor.gaps == [] and _poll(pg_db, cursor) == []


def test_other_events_move_the_cursor_and_old_gaps_are_given_up(db: Database) -> None:
    now = [0.0]
    cursor = OutboxCursor(_head(db), gap_seconds=10, monotonic=lambda: now[0])
    with db.session() as s:
        for i in range(3):
            add_event(s, "access.denied", f"c{i}", {}, time=NOW)
        add_event(s, "subscription.created", "c9", {}, time=NOW)
    assert _poll(db, cursor) == ["c9"]
    assert cursor.last == _head(db)  # past the denials too: they are not read again
    cursor._gaps[cursor.last - 100] = now[0]  # a seq that never commits (a rollback)
    now[0] = 11
    assert _poll(db, cursor) == [] and cursor.gaps == []
