"""RabbitMQ-only behaviour, against the real broker: separate worker processes, a dropped
connection, a worker killed between commit and ack, poison messages, a broker that is
unreachable, several relays, graceful shutdown and `broker status`."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from events_support import (
    RelayThread,
    build_registry,
    close_rabbit_connections,
    create_effects,
    drain_queue,
    effect_counts,
    effects_in_order,
    pending_outbox,
    publish_raw,
    publish_to_queue,
    queue_consumers,
    queue_depth,
    rabbit_connections,
    start_worker_process,
    wait_until,
)

from engine.config import Settings
from engine.events import BusConfig, EventMetrics, broker_status
from engine.store import Database, add_event

pytestmark = pytest.mark.rabbitmq
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def produce(db: Database, type_: str, count: int, customers: int = 5, start: int = 0) -> list[str]:
    with db.session() as session:
        return [
            add_event(session, type_, f"cus_{i % customers}", {"n": i}, time=T0).id for i in range(start, start + count)
        ]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def wait_consuming(url: str, config: BusConfig, *subsystems: str, n: int = 1) -> None:
    for s in subsystems:
        wait_until(lambda s=s: queue_consumers(url, config.queue(s)) >= n, timeout=30, what=f"a consumer on {s}")


def test_workers_in_other_processes_apply_every_event_once(
    pg_db: Database, rabbit_topology: str, bus_config: BusConfig, procs: list[Any]
) -> None:
    url = rabbit_topology
    create_effects(pg_db)
    # Two processes compete for the sales queue; one of them also serves the others and
    # relays the outbox (as `billing worker` does); nothing runs in this process.
    procs.append(start_worker_process(pg_db.url, url, bus_config.prefix, "all", "--with-relay"))
    procs.append(start_worker_process(pg_db.url, url, bus_config.prefix, "sales"))
    wait_consuming(url, bus_config, "sales", n=2)
    wait_consuming(url, bus_config, "payments", "messaging")
    ids = produce(pg_db, "invoice.paid", 400)
    want = {(s, i): 1 for i in ids for s in ("sales", "payments", "messaging")}
    wait_until(lambda: sum(effect_counts(pg_db).values()) >= len(want), what="all effects")
    assert effect_counts(pg_db) == want
    assert pending_outbox(pg_db) == 0


def test_connection_dropped_mid_stream_every_event_delivered_once(
    pg_db: Database, rabbit_topology: str, bus_config: BusConfig, procs: list[Any], rabbitmqctl: str
) -> None:
    url = rabbit_topology
    create_effects(pg_db)
    procs.append(start_worker_process(pg_db.url, url, bus_config.prefix, "all"))
    wait_consuming(url, bus_config, "sales", "payments", "messaging")
    relay = RelayThread(pg_db, url, bus_config, build_registry())
    before = set(rabbit_connections(bus_config.prefix))
    assert len(before) == 5  # the relay and the worker's four consumers
    dropped: list[int] = []

    def drop_twice() -> None:
        time.sleep(0.5)
        dropped.append(close_rabbit_connections(bus_config.prefix))
        time.sleep(0.7)
        dropped.append(close_rabbit_connections(bus_config.prefix))

    dropper = threading.Thread(target=drop_twice)
    dropper.start()
    ids: list[str] = []
    for chunk in range(20):  # a steady stream while the connections drop
        ids += produce(pg_db, "invoice.paid", 60, start=chunk * 60)
        time.sleep(0.15)
    dropper.join()
    assert len(dropped) == 2 and all(n >= 1 for n in dropped)
    want = {(s, i): 1 for i in ids for s in ("sales", "payments", "messaging")}
    wait_until(
        lambda: sum(effect_counts(pg_db).values()) >= len(want), timeout=40, what="all effects after reconnecting"
    )
    wait_until(lambda: pending_outbox(pg_db) == 0, what="outbox drained")
    wait_until(lambda: queue_depth(url, bus_config.queue("sales")) == 0, what="sales drained")
    relay.stop()
    assert effect_counts(pg_db) == want
    after = set(rabbit_connections(bus_config.prefix))
    assert len(after) >= 4 and not (after & before), "every connection was replaced"


def test_worker_killed_after_commit_before_ack_is_redelivered_and_applied_once(
    pg_db: Database, rabbit_topology: str, bus_config: BusConfig, procs: list[Any]
) -> None:
    url = rabbit_topology
    create_effects(pg_db)
    registry = build_registry()
    relay = RelayThread(pg_db, url, bus_config, registry)
    ids = produce(pg_db, "invoice.finalized", 50)
    wait_until(lambda: pending_outbox(pg_db) == 0, what="published")
    relay.stop()
    wait_until(lambda: queue_depth(url, bus_config.queue("sales")) == 50, what="queued")

    victim = start_worker_process(pg_db.url, url, bus_config.prefix, "sales", "--kill-after-commit", ids[10])
    procs.append(victim)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    # The batch holding ids[10] committed its effects but was never acked: the broker
    # puts it back in the queue.
    assert effect_counts(pg_db)[("sales", ids[10])] == 1
    wait_until(lambda: queue_depth(url, bus_config.queue("sales")) > 0, what="requeued")
    requeued = queue_depth(url, bus_config.queue("sales"))
    applied_before = {e for (s, e) in effect_counts(pg_db) if s == "sales"}
    assert 50 - len(applied_before) < requeued  # applied-but-unacked events came back

    procs.append(start_worker_process(pg_db.url, url, bus_config.prefix, "sales"))
    wait_until(lambda: queue_depth(url, bus_config.queue("sales")) == 0, timeout=30, what="redelivered and acked")
    counts = effect_counts(pg_db)
    assert {i: counts.get(("sales", i)) for i in ids} == {i: 1 for i in ids}


def test_poison_messages_go_to_the_dead_letter_queue_with_the_reason(
    pg_db: Database, rabbit_topology: str, bus_config: BusConfig, rabbit_harness: Any
) -> None:
    url = rabbit_topology
    h = rabbit_harness(pg_db)
    create_effects(pg_db)
    h.start()
    wait_consuming(url, bus_config, "sales")
    poison = {
        b"{not json": "invalid JSON",
        b"[1, 2]": "not an object",
        json.dumps(
            {"id": "evt_p1", "type": "test.a", "time": "2026-01-01T00:00:00Z", "properties": {}}
        ).encode(): "missing customer_id",
        json.dumps(
            {"id": "evt_p2", "type": "test.a", "customer_id": "c", "time": "2026-01-01T00:00:00"}
        ).encode(): "timezone",
    }
    for body in poison:
        publish_raw(url, bus_config, "test.poison", body)
    [good] = produce(pg_db, "test.ok", 1)
    wait_until(lambda: h.metrics.get("sales", "dead_lettered") == 4, what="four dead letters")
    wait_until(lambda: ("sales", good) in effect_counts(pg_db), what="the worker goes on")
    h.stop()
    dead = drain_queue(url, bus_config.dead_queue("sales"))
    reasons = {body: str(headers["x-error"]) for body, headers in dead}
    assert set(reasons) == set(poison)
    for body, expected in poison.items():
        assert expected in reasons[body], reasons[body]
    assert all(headers["x-subsystem"] == "sales" for _, headers in dead)
    assert h.metrics.get("sales", "failed") == 0  # poison is not retried
    assert queue_depth(url, bus_config.queue("sales")) == 0


def test_unknown_event_type_is_acknowledged_and_counted_not_retried(
    pg_db: Database, rabbit_topology: str, bus_config: BusConfig, rabbit_harness: Any
) -> None:
    url = rabbit_topology
    h = rabbit_harness(pg_db)
    create_effects(pg_db)
    h.start()
    wait_consuming(url, bus_config, "sales")
    body = json.dumps(
        {
            "id": "evt_unknown1",
            "type": "mystery.thing",
            "customer_id": "c",
            "time": "2026-01-01T00:00:00Z",
            "properties": {},
        }
    ).encode()
    publish_to_queue(url, bus_config.queue("sales"), body)
    wait_until(lambda: h.metrics.get("sales", "unhandled") == 1, what="counted")
    h.stop()
    assert queue_depth(url, bus_config.queue("sales")) == 0
    assert h.metrics.get("sales", "retried") == 0
    assert h.metrics.get("sales", "dead_lettered") == 0
    assert queue_depth(url, bus_config.dead_queue("sales")) == 0


def test_outbox_holds_events_while_the_broker_is_unreachable_then_drains(
    pg_db: Database,
    rabbit_topology: str,
    bus_config: BusConfig,
    rabbit_harness: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="engine.events.rabbit")
    create_effects(pg_db)
    registry = build_registry()
    ids = produce(pg_db, "invoice.paid", 40)
    down_url = "amqp://guest:guest@127.0.0.1:1/"  # nothing listens there
    down = RelayThread(pg_db, down_url, bus_config, registry)
    wait_until(
        lambda: sum("broker unavailable" in r.getMessage() for r in caplog.records) >= 2,
        what="two failed connection attempts",
    )
    down.stop()
    assert pending_outbox(pg_db) == 40
    status = broker_status(
        Settings(broker_url=down_url, database_url=pg_db.url), db=pg_db, config=bus_config, handlers=registry
    )
    assert status["reachable"] is False
    assert status["outbox"]["pending"] == 40

    h = rabbit_harness(pg_db)
    h.start()
    want = {(s, i): 1 for i in ids for s in ("sales", "payments", "messaging")}
    wait_until(lambda: sum(effect_counts(pg_db).values()) >= len(want), what="drained")
    wait_until(lambda: pending_outbox(pg_db) == 0)
    h.stop()
    assert effect_counts(pg_db) == want


def test_two_relays_publish_each_row_once_and_keep_customer_order(
    pg_db: Database, rabbit_topology: str, bus_config: BusConfig, rabbit_harness: Any
) -> None:
    url = rabbit_topology
    create_effects(pg_db)
    registry = build_registry()
    config = BusConfig(**{**bus_config.__dict__, "relay_batch_size": 50})
    ids = produce(pg_db, "invoice.finalized", 1000, customers=7)
    m1, m2 = EventMetrics(), EventMetrics()
    relays = [RelayThread(pg_db, url, config, registry, m) for m in (m1, m2)]
    h = rabbit_harness(pg_db, config)
    h.start()
    wait_until(lambda: len(effect_counts(pg_db)) >= 2000, timeout=40, what="all effects")
    for r in relays:
        r.stop()
    h.stop()
    assert Counter(effect_counts(pg_db).values()) == Counter({1: 2000})
    assert h.metrics.get("sales", "duplicates") == 0, "a row was published twice"
    # The harness runs a third relay: between them, every row exactly once.
    published = [m.get("sales", "published") for m in (m1, m2, h.metrics)]
    assert sum(published) == 1000
    assert sum(1 for n in published if n) >= 2, published
    seen: dict[str, int] = {}
    for customer, n in effects_in_order(pg_db, "sales"):
        assert n > seen.get(customer, -1), f"{customer} out of order"
        seen[customer] = n
    assert len(ids) == 1000


def test_sigterm_stops_a_worker_gracefully(
    pg_db: Database, rabbit_topology: str, bus_config: BusConfig, procs: list[Any]
) -> None:
    url = rabbit_topology
    create_effects(pg_db)
    worker = start_worker_process(pg_db.url, url, bus_config.prefix, "sales")
    procs.append(worker)
    wait_consuming(url, bus_config, "sales")
    relay = RelayThread(pg_db, url, bus_config, build_registry())
    ids = produce(pg_db, "invoice.finalized", 300)
    wait_until(lambda: len(effect_counts(pg_db)) > 0, what="work in hand")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    relay.stop()
    # Whatever it had not settled is back in the queue; nothing was applied twice.
    done = {e for (s, e) in effect_counts(pg_db) if s == "sales"}
    assert queue_depth(url, bus_config.queue("sales")) + len(done) >= len(ids)
    assert set(effect_counts(pg_db).values()) == {1}
    assert queue_consumers(url, bus_config.queue("sales")) == 0


def test_broker_status_reports_queues_depths_and_dead_letters(
    pg_db: Database, rabbit_topology: str, bus_config: BusConfig
) -> None:
    url = rabbit_topology
    registry = build_registry()
    relay = RelayThread(pg_db, url, bus_config, registry)
    produce(pg_db, "payment.card.failed", 3)
    wait_until(lambda: pending_outbox(pg_db) == 0)
    relay.stop()
    publish_to_queue(url, bus_config.dead_queue("payments"), b"{}")
    status = broker_status(
        Settings(broker_url=url, database_url=pg_db.url), db=pg_db, config=bus_config, handlers=registry
    )
    assert status["bus"] == "rabbitmq" and status["reachable"] is True
    assert "guest:***@" in status["broker_url"]
    queues = {q["subsystem"]: q for q in status["queues"]}
    assert set(queues) == {"sales", "payments", "access", "messaging"}
    assert queues["payments"]["messages"] == 3
    assert queues["payments"]["dead_letters"] == 1
    assert queues["messaging"]["messages"] == 3
    assert queues["sales"]["messages"] == 0
    assert queues["payments"]["patterns"] == ["invoice.paid", "payment.#"]
    assert status["outbox"]["pending"] == 0 and status["outbox"]["published"] == 3
