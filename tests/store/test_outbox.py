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
