"""The stored test clock (engine/store/clock.py) and the settle of a broker-backed advance
(engine/events/settle.py): every process of a system on a test clock reads one clock, and the
advance waits until every event is applied by every subscriber."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from engine.api import create_app, create_key
from engine.config import Settings
from engine.events import HandlerRegistry
from engine.events.settle import NotSettled, Settler
from engine.store import Database, add_event, mark_processed
from engine.store.clock import StoredClock
from engine.system import build_system
from tests.api.conftest import serve

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_an_advance_over_http_moves_the_clock_of_every_process(tmp_path: Path) -> None:
    """`billing serve --no-workers`, `billing worker` and `billing scheduler` each build their own
    system from the same settings: the API's advance must move the workers' clock too."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/b.db", test_clock="2026-01-01T00:00:00Z")
    api = build_system(settings)
    worker = build_system(settings, create_tables=False)
    with api.db.session() as s:
        _, key = create_key(s, "admin", now=START)
    with serve(create_app(api.api_context())) as url:
        r = httpx.post(f"{url}/v1/clock/advance", json={"by": "3d"}, headers={"Authorization": f"Bearer {key}"},
                       timeout=60)
        assert r.status_code == 200, r.text
        health = httpx.get(f"{url}/health", timeout=10).json()
    assert health["test_clock"] is True and health["time"].startswith("2026-01-04T00:00:00")
    assert worker.clock.now() == START + timedelta(days=3)
    # A process started later (a restarted worker) joins at the stored time, not its start.
    late = build_system(settings, create_tables=False)
    assert late.clock.now() == START + timedelta(days=3)
    for system in (api, worker, late):
        system.db.dispose()


def test_the_stored_clock_never_goes_back_and_is_read_within_its_ttl(sqlite_db: Database) -> None:
    one = StoredClock(sqlite_db, START, ttl=0)
    other = StoredClock(sqlite_db, START + timedelta(days=9), ttl=0)  # the stored start wins
    assert other.now() == START
    one.set(START + timedelta(hours=5))
    assert other.now() == START + timedelta(hours=5)
    with pytest.raises(ValueError, match="cannot go back"):
        other.set(START)
    with pytest.raises(ValueError, match="timezone"):
        one.set(datetime(2026, 2, 1))  # a naive time is refused
    cached = StoredClock(sqlite_db, START, ttl=3600)
    one.set(START + timedelta(days=1))
    assert cached.now() == START + timedelta(hours=5)  # read at most once per ttl: cheap


def test_a_settle_waits_for_every_subscriber_of_every_event(db: Database) -> None:
    registry = HandlerRegistry()
    registry.register("sales", "invoice.*", lambda s, e: None)
    registry.register("automation", "#", lambda s, e: None)
    settler = Settler(db, registry, poll=0.001)
    with db.session() as s:
        first = add_event(s, "invoice.finalized", "cus_1", {}, time=START).id
        second = add_event(s, "usage.recorded", "cus_1", {}, time=START).id
    assert settler.pending() == 2
    with db.session() as s:
        mark_processed(s, "automation", first, START)
        mark_processed(s, "automation", second, START)
    assert settler.pending() == 1  # sales has not applied the invoice yet
    with pytest.raises(NotSettled, match="1 event"):
        settler.wait(timeout=0.01)
    with db.session() as s:
        mark_processed(s, "sales", first, START)
    settler.wait(timeout=1)
    assert settler.pending() == 0
