"""Envelope validation, topic patterns, counters, config and the in-process entry points."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from events_support import build_registry, create_effects, effect_counts, wait_until

from engine.config import Settings
from engine.events import (
    BusConfig,
    Envelope,
    EventMetrics,
    HandlerRegistry,
    PoisonMessage,
    broker_status,
    handles,
    parse_envelope,
    render_prometheus,
    run_worker,
    topic_matches,
)
from engine.store import Database, add_event, mark_processed
from engine.store.outbox import mark_processed_many

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_envelope_round_trips_and_normalises_time_to_utc() -> None:
    env = parse_envelope(
        b'{"id":"evt_1","type":"api.request","customer_id":"cus_42",'
        b'"time":"2026-11-23T11:00:00+01:00","properties":{"endpoint":"/v1/search"}}'
    )
    assert env.time == T0
    assert env.to_dict()["time"] == "2026-11-23T10:00:00Z"
    assert parse_envelope(env.to_json()) == env


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{oops", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b'"a string"', "not an object"),
        (b'{"type":"a.b","customer_id":"c","time":"2026-01-01T00:00:00Z"}', "missing id"),
        (b'{"id":"e","customer_id":"c","time":"2026-01-01T00:00:00Z"}', "missing type"),
        (b'{"id":"e","type":"a.b","time":"2026-01-01T00:00:00Z"}', "missing customer_id"),
        (b'{"id":"e","type":"a.b","customer_id":"c","time":"2026-01-01T00:00:00"}', "timezone"),
        (b'{"id":"e","type":"a b","customer_id":"c","time":"2026-01-01T00:00:00Z"}', "type"),
        (b'{"id":"","type":"a.b","customer_id":"c","time":"2026-01-01T00:00:00Z"}', "id"),
        (b'{"id":"e","type":"a.b","customer_id":"c","time":"2026-01-01T00:00:00Z","properties":[1]}', "properties"),
    ],
)
def test_poison_bodies_are_rejected_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        parse_envelope(body)


def test_customer_id_may_be_null_when_present() -> None:
    env = parse_envelope(b'{"id":"e","type":"a.b","customer_id":null,"time":"2026-01-01T00:00:00Z"}')
    assert env.customer_id is None and env.properties == {}


@pytest.mark.parametrize(
    ("pattern", "event_type", "matches"),
    [
        ("#", "invoice.paid", True),
        ("invoice.*", "invoice.paid", True),
        ("invoice.*", "invoice.payment.failed", False),
        ("invoice.*", "invoice", False),
        ("invoice.#", "invoice", True),
        ("invoice.#", "invoice.payment.failed", True),
        ("#.failed", "payment.failed", True),
        ("*.failed", "invoice.payment.failed", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("invoice.paid", "invoice.paid", True),
        ("invoice.paid", "invoice.paid.late", False),
    ],
)
def test_topic_patterns_follow_amqp_rules(pattern: str, event_type: str, matches: bool) -> None:
    assert topic_matches(pattern, event_type) is matches


def test_registry_routes_by_subsystem_and_rejects_bad_names() -> None:
    reg = build_registry()
    assert reg.subscribers("invoice.paid") == ["sales", "payments", "messaging"]
    assert reg.subscribers("mystery.event") == []
    assert reg.patterns("payments") == ["invoice.paid", "payment.#"]
    with pytest.raises(ValueError):
        reg.register("Sales!", "x", lambda s, e: None)
    with pytest.raises(ValueError):
        reg.register("sales", "a..b", lambda s, e: None)


def test_decorator_registers_into_the_process_registry() -> None:
    from engine.events import registry

    @handles("access", "test.decorated")
    def on_it(session: Any, env: Envelope) -> None: ...

    try:
        assert on_it in registry.handlers_for("access", "test.decorated")
    finally:
        registry.unregister("access", "test.decorated", on_it)
    assert on_it not in registry.handlers_for("access", "test.decorated")


def test_prometheus_text_has_help_type_and_a_sample_per_queue() -> None:
    m = EventMetrics()
    m.inc("sales", "published", 3)
    m.inc("sales", "consumed", 2)
    m.inc("payments", "dead_lettered")
    text = render_prometheus(m)
    assert "# TYPE billing_events_published_total counter" in text
    assert 'billing_events_published_total{queue="sales"} 3' in text
    assert 'billing_events_consumed_total{queue="sales"} 2' in text
    assert 'billing_events_dead_lettered_total{queue="payments"} 1' in text
    assert 'billing_events_failed_total{queue="payments"} 0' in text
    with pytest.raises(KeyError):
        m.inc("sales", "bogus")


def test_retry_delays_grow_and_the_last_repeats() -> None:
    cfg = BusConfig(retry_delays_ms=(100, 1000, 5000))
    assert [cfg.retry_delay_ms(k) for k in (1, 2, 3, 4, 9)] == [100, 1000, 5000, 5000, 5000]
    assert cfg.retry_queue("sales", 1000) == "billing.sales.retry.1000ms"
    with pytest.raises(ValueError):
        BusConfig(prefix="bad name")
    with pytest.raises(ValueError):
        BusConfig(max_attempts=0)


def test_mark_processed_many_returns_only_new_ids(db: Database) -> None:
    with db.session() as s:
        assert mark_processed(s, "sales", "evt_a", T0) is True
    with db.session() as s:
        assert mark_processed_many(s, "sales", ["evt_a", "evt_b", "evt_b", "evt_c"], T0) == {
            "evt_b",
            "evt_c",
        }
        assert mark_processed_many(s, "payments", ["evt_a"], T0) == {"evt_a"}
        assert mark_processed_many(s, "sales", [], T0) == set()


def test_run_worker_without_a_broker_dispatches_the_outbox(sqlite_db: Database) -> None:
    create_effects(sqlite_db)
    reg = build_registry()
    with sqlite_db.session() as s:
        ids = [add_event(s, "invoice.paid", "cus_1", {"n": i}, time=T0).id for i in range(5)]
    stop = threading.Event()
    settings = Settings(database_url="sqlite://", broker_url="")
    t = threading.Thread(
        target=run_worker,
        args=("all", reg, settings, stop),
        kwargs={"db": sqlite_db, "config": BusConfig(poll_interval=0.02)},
    )
    t.start()
    try:
        wait_until(lambda: len(effect_counts(sqlite_db)) == 15, what="three subscribers x 5")
    finally:
        stop.set()
        t.join(timeout=10)
    assert not t.is_alive()
    assert set(effect_counts(sqlite_db).values()) == {1}
    assert {e for _, e in effect_counts(sqlite_db)} == set(ids)
    with pytest.raises(ValueError, match="unknown subsystem"):
        run_worker("billing", reg, settings, stop, db=sqlite_db)


def test_in_process_broker_status_counts_pending_and_dead(sqlite_db: Database) -> None:
    reg = HandlerRegistry()
    reg.register("payments", "invoice.*", lambda s, e: None)
    with sqlite_db.session() as s:
        add_event(s, "invoice.paid", "cus_1", {}, time=T0)
        add_event(s, "invoice.paid", "cus_2", {}, time=T0)
        dead = add_event(s, "invoice.overdue", "cus_1", {}, time=T0)
        dead.dead_at = T0
        dead.last_error = "payments: boom"
    status = broker_status(Settings(database_url="sqlite://", broker_url=""), db=sqlite_db, handlers=reg)
    assert status["bus"] == "in-process"
    assert status["outbox"]["pending"] == 2 and status["outbox"]["dead"] == 1
    payments = next(q for q in status["queues"] if q["subsystem"] == "payments")
    assert payments["messages"] == 2 and payments["dead_letters"] == 1
    sales = next(q for q in status["queues"] if q["subsystem"] == "sales")
    assert sales["messages"] == 0


def test_prune_drops_old_published_rows_and_records_but_keeps_pending_and_dead(
    db: Database,
) -> None:
    from datetime import timedelta

    from sqlalchemy import func, select

    from engine.store import OutboxEvent, ProcessedEvent
    from engine.store.outbox import prune

    old, recent = T0 - timedelta(days=30), T0
    with db.session() as s:
        a = add_event(s, "invoice.paid", "c", {}, time=old)
        a.published_at = old
        b = add_event(s, "invoice.paid", "c", {}, time=recent)
        b.published_at = recent
        add_event(s, "invoice.paid", "c", {}, time=old)  # still pending
        d = add_event(s, "invoice.paid", "c", {}, time=old)
        d.dead_at = old
        mark_processed(s, "sales", a.id, old)
        mark_processed(s, "sales", b.id, recent)
    with db.session() as s:
        assert prune(s, T0 - timedelta(days=7)) == {"outbox": 1, "processed": 1}
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 3
        assert s.scalars(select(ProcessedEvent.event_id)).all() == [b.id]
