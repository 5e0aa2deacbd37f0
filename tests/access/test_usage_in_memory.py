"""New usage added to the held snapshot in memory (no reload), and only where that is exact:
after every batch, what the view holds is what a fresh load from the database says."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from engine import sales
from engine.access import AccessService, AccessView
from engine.access.snapshot import add_usage, load_snapshot
from engine.clock import TestClock
from engine.pricing import parse_event
from engine.store import Database
from engine.system import access_readers

# Quotas on every kind of metric: counted with a filter, summed (with a filter), a daily
# window, and a max, which new events cannot simply be added to.
CATALOG = """
catalog: meters
currency: EUR
metrics:
  downloads: {event: asset.downloaded, aggregation: count, filters: {license: [standard, extended]}}
  gpu_hours: {event: gpu.used, aggregation: sum, field: hours, filters: {region: [eu, us]}}
  calls: {event: api.request, aggregation: count}
  storage_gb: {event: storage.measured, aggregation: max, field: gb}
features:
  downloads: {name: Downloads, type: metered, metric: downloads}
  gpu: {name: GPU, type: metered, metric: gpu_hours}
  api: {name: API, type: metered, metric: calls}
  storage: {name: Storage, type: metered, metric: storage_gb}
plans:
  team:
    name: Team
    interval: month
    prices:
      - {id: base, name: Base, model: flat, amount: "10.00"}
    entitlements:
      downloads: {limit: 500, period: month, overage: block}
      gpu: {limit: 100, period: month, overage: allow}
      api: {limit: 50, period: day, overage: block}
      storage: {limit: 20, period: month, overage: notify}
"""

START = datetime(2026, 11, 10, 9, tzinfo=UTC)


@pytest.fixture
def metered(db: Database, tmp_path: Path) -> tuple[Database, TestClock, AccessService]:
    clock = TestClock(START)
    path = tmp_path / "meters.yaml"
    path.write_text(CATALOG)
    with db.session() as s:
        sales.publish_catalog(s, path, "test", clock=clock)
        sales.create_customer(s, {"id": "acme", "name": "Acme", "email": "a@acme.test"}, clock=clock)
        sales.create_subscription(s, "acme", "team", clock=clock)
    return db, clock, AccessService(db, clock, access_readers(), AccessView(ttl=3600))


def _random_event(rng: random.Random, n: int, additive_only: bool) -> dict[str, Any]:
    kind = rng.choice(["dl", "gpu", "call"] if additive_only else ["dl", "gpu", "call", "storage"])
    # Inside the month and the day, before them, and after them (a late or an early clock).
    when = START + rng.choice(
        [timedelta(0), timedelta(hours=3), -timedelta(days=1), -timedelta(days=15), timedelta(days=30)]
    )
    event: dict[str, Any] = {"id": f"e{n}", "customer_id": "acme", "time": when.isoformat()}
    if kind == "dl":
        props = {"license": rng.choice(["standard", "extended", "editorial", 1])}
        return {**event, "type": "asset.downloaded", "properties": props}
    if kind == "gpu":
        props = {"region": rng.choice(["eu", "us", "apac"]), "hours": rng.choice(["1.25", 2, "0.001", 0])}
        return {**event, "type": "gpu.used", "properties": props}
    if kind == "call":
        return {**event, "type": "api.request"}
    return {**event, "type": "storage.measured", "properties": {"gb": rng.choice([1, 7, "12.5"])}}


def _ingest(db: Database, clock: TestClock, access: AccessService, batch: list[dict[str, Any]]) -> None:
    before = access.before_usage([e["customer_id"] for e in batch])
    with db.session() as s:
        result = sales.ingest_events(s, batch, clock=clock, recorded_id=before.recorded_id)
    customers = [e["customer_id"] for e in batch]
    access.usage_changed(customers, result.recorded_event_id, stored=result.stored, before=before)


def test_added_usage_is_what_the_database_says(metered: tuple[Database, TestClock, AccessService]) -> None:
    db, clock, access = metered
    rng = random.Random(7)
    access.snapshot("acme")
    sent: list[dict[str, Any]] = []
    in_memory = reloads = 0
    for round_ in range(40):
        additive_only = round_ % 4 != 3  # every fourth batch also measures storage (a max)
        batch = [_random_event(rng, len(sent) + i, additive_only) for i in range(rng.randint(1, 12))]
        batch += rng.sample(sent, min(len(sent), 3))  # repeats: stored once, added once
        sent += batch
        misses = access.view.misses
        _ingest(db, clock, access, batch)
        held = access.view.current("acme")
        if held is None:  # its usage was marked stale: the next check reads it again
            reloads += 1
            assert not additive_only
            held = access.snapshot("acme")
        else:
            in_memory += 1
            assert access.view.misses == misses  # nothing was read from the database
        with db.read_session() as s:
            loaded = load_snapshot(s, "acme", clock.now(), access_readers())
        assert dict(held.usage) == dict(loaded.usage), f"round {round_}"
    assert in_memory >= 25 and reloads >= 5
    assert held.usage["gpu_hours"] > 0 and held.usage["downloads"] > 0 and held.usage["calls"] > 0


def test_a_batch_of_repeats_keeps_the_snapshot(metered: tuple[Database, TestClock, AccessService]) -> None:
    db, clock, access = metered
    batch = [_call("e1")]
    _ingest(db, clock, access, batch)
    first = access.snapshot("acme")
    assert first.usage["calls"] == 1
    _ingest(db, clock, access, batch)
    assert access.view.current("acme") is first


def test_a_snapshot_loaded_during_the_ingestion_is_read_again(
    metered: tuple[Database, TestClock, AccessService],
) -> None:
    db, clock, access = metered
    access.snapshot("acme")
    held = access.before_usage(["acme"])
    with db.session() as s:
        result = sales.ingest_events(s, [_call("e1")], clock=clock, recorded_id=held.recorded_id)
    # Meanwhile another process stores an event, and a check here reloads the customer
    # after both commits: the reload counts both.
    with db.session() as s:
        sales.ingest_events(s, [_call("e2")], clock=clock)
    access.invalidate("acme")
    assert access.snapshot("acme").usage["calls"] == 2
    access.usage_changed(["acme"], result.recorded_event_id, stored=result.stored, before=held)
    # Not the held snapshot plus e1 (1), nor the reload plus e1 again (3).
    assert access.snapshot("acme").usage["calls"] == 2


def test_a_load_in_flight_is_not_cached_over_the_added_usage(
    metered: tuple[Database, TestClock, AccessService],
) -> None:
    db, clock, access = metered

    def slow_load() -> Any:
        # This load read the database before the commit below (0 calls). While it is on its
        # way, another check loads and caches the customer, and the ingestion commits and
        # adds its event to that snapshot.
        before_commit = access.snapshot("acme")
        _ingest(db, clock, access, [_call("e1")])
        return before_commit

    assert access.view.get("acme", slow_load).usage["calls"] == 0  # the caller gets what it loaded...
    assert access.snapshot("acme").usage["calls"] == 1  # ...but the view keeps the added usage


def _call(id: str) -> dict[str, Any]:
    return {"id": id, "type": "api.request", "customer_id": "acme", "time": START.isoformat()}


def test_add_usage_is_exact_or_declines() -> None:
    snapshot = load_snapshot_like()
    gpu = parse_event(
        {
            "id": "g1",
            "type": "gpu.used",
            "customer_id": "acme",
            "time": START.isoformat(),
            "properties": {"region": "eu", "hours": "2.5"},
        }
    )
    assert add_usage(snapshot, [gpu]).usage["gpu_hours"] == D("4.0")  # type: ignore[union-attr]
    no_hours = parse_event({**_envelope(gpu), "id": "g2", "properties": {"region": "eu"}})
    assert add_usage(snapshot, [no_hours]) is None  # the reload reports the bad value
    storage = parse_event({**_envelope(gpu), "id": "s1", "type": "storage.measured", "properties": {"gb": 3}})
    assert add_usage(snapshot, [storage]) is None  # a max: needs the other events
    assert add_usage(snapshot, []) is snapshot


def _envelope(event: Any) -> dict[str, Any]:
    return {"id": event.id, "type": event.type, "customer_id": event.customer_id, "time": event.time.isoformat()}


def load_snapshot_like() -> Any:
    from engine.access import Snapshot
    from engine.catalog import load_catalog_text
    from engine.periods import Period

    catalog = load_catalog_text(CATALOG, "meters.yaml")
    month = Period(START.date(), datetime(2026, 12, 10).date())
    return Snapshot(
        "acme",
        True,
        {"id": "acme"},
        {"status": "active"},
        catalog,
        catalog.plan("team"),
        "active",
        {"gpu_hours": D("1.5"), "storage_gb": D(1)},
        None,
        {"gpu_hours": month, "storage_gb": month},
    )


def test_the_outbox_follower_reading_first_takes_the_batch_for_its_own(
    metered: tuple[Database, TestClock, AccessService],
) -> None:
    db, clock, access = metered
    access.start_following()
    access.snapshot("acme")
    misses = access.view.misses
    before = access.before_usage(["acme"])
    with db.session() as s:
        result = sales.ingest_events(s, [_call("e1")], clock=clock, recorded_id=before.recorded_id)
    # The follower polls between the commit and usage_changed: the batch's usage.recorded is
    # this process's own, so it leaves the snapshot for usage_changed to add to.
    assert access.follow_once() == 1
    access.usage_changed(["acme"], result.recorded_event_id, stored=result.stored, before=before)
    held = access.view.current("acme")
    assert held is not None and held.usage["calls"] == 1
    assert access.view.misses == misses
    # A batch of repeats publishes nothing: its id is forgotten, not kept for an event to come.
    again = access.before_usage(["acme"])
    with db.session() as s:
        repeat = sales.ingest_events(s, [_call("e1")], clock=clock, recorded_id=again.recorded_id)
    access.usage_changed(["acme"], repeat.recorded_event_id, stored=repeat.stored, before=again)
    assert again.recorded_id not in access._own_events
