"""The idempotency record every consumer relies on, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.store import Database, mark_processed

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_mark_processed_says_true_once_per_consumer_and_event(db: Database) -> None:
    with db.session() as s:
        assert mark_processed(s, "sales", "evt_1", NOW) is True
        assert mark_processed(s, "sales", "evt_1", NOW) is False
        assert mark_processed(s, "payments", "evt_1", NOW) is True
    with db.session() as s:  # and across transactions
        assert mark_processed(s, "sales", "evt_1", NOW) is False
        assert mark_processed(s, "sales", "evt_2", NOW) is True


def test_a_reader_does_not_wait_for_a_writer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLite: an open write transaction must not block a read session (WAL + deferred BEGIN)."""
    import time

    from sqlalchemy import func, select

    from engine.store import ProcessedEvent

    db = Database(f"sqlite:///{tmp_path}/rw.db")
    db.migrate()
    with db.session() as writer:
        mark_processed(writer, "sales", "evt_w", NOW)  # holds the write lock until the block ends
        started = time.monotonic()
        with db.read_session() as reader:
            assert reader.scalar(select(func.count()).select_from(ProcessedEvent)) == 0  # not yet committed
        assert time.monotonic() - started < 1.0
    with db.read_session() as reader:
        assert reader.scalar(select(func.count()).select_from(ProcessedEvent)) == 1
