"""Test handlers, an effects table and a harness that drives either bus the same way."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aio_pika
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from engine.events import (
    BusConfig,
    Envelope,
    HandlerRegistry,
    InProcessBus,
    OutboxRelay,
    RabbitBus,
    delete_topology,
)
from engine.events.metrics import EventMetrics
from engine.store import Database, OutboxEvent

ROOT = Path(__file__).resolve().parents[2]
WORKER_SCRIPT = Path(__file__).with_name("worker_proc.py")


def start_worker_process(
    db_url: str, rabbit_url: str, prefix: str, subsystem: str, *extra: str
) -> subprocess.Popen[bytes]:
    """`run_worker` in a separate process, as `billing worker --subsystem S` runs it."""
    import sys

    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER_SCRIPT),
            "--db",
            db_url,
            "--broker",
            rabbit_url,
            "--prefix",
            prefix,
            "--subsystem",
            subsystem,
            *extra,
        ],
        cwd=ROOT,
    )


# Effects live in their own table, without a unique constraint: a second application of
# the same event would show up as a second row.
test_metadata = MetaData()
effects = Table(
    "test_event_effects",
    test_metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("subsystem", String(32), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("customer_id", String(64)),
    Column("n", Integer),
)


def create_effects(db: Database) -> None:
    test_metadata.drop_all(db.engine)
    test_metadata.create_all(db.engine)


class Flaky:
    """Fails the first `failures` times it sees each event of the given type."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, event_id: str) -> None:
        with self.lock:
            self.seen[event_id] = self.seen.get(event_id, 0) + 1
            if self.seen[event_id] <= self.failures:
                raise RuntimeError(f"flaky failure {self.seen[event_id]}")


def recorder(subsystem: str) -> Callable[[Any, Envelope], None]:
    def record(session: Any, env: Envelope) -> None:
        if env.type == "test.explode":
            raise RuntimeError("handler exploded on purpose")
        session.execute(
            insert(effects).values(
                subsystem=subsystem,
                event_id=env.id,
                customer_id=env.customer_id,
                n=env.properties.get("n"),
            )
        )

    record.__qualname__ = f"record_{subsystem}"
    return record


def build_registry(flaky: Flaky | None = None) -> HandlerRegistry:
    """sales: invoice.* and test.*; payments: invoice.paid and payment.#; messaging:
    invoice.#, payment.#, access.denied, test.#. Nobody takes `mystery.*`; access nothing."""
    reg = HandlerRegistry()
    reg.register("sales", "invoice.*", recorder("sales"))
    reg.register("sales", "test.*", recorder("sales"))
    reg.register("payments", "invoice.paid", recorder("payments"))
    reg.register("payments", "payment.#", recorder("payments"))
    for pattern in ("invoice.#", "payment.#", "access.denied", "test.#"):
        reg.register("messaging", pattern, recorder("messaging"))
    if flaky is not None:

        def flaky_handler(session: Any, env: Envelope) -> None:
            if env.type == "test.flaky":
                flaky(env.id)

        reg.register("sales", "test.flaky", flaky_handler)
    return reg


def effect_counts(db: Database) -> dict[tuple[str, str], int]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(effects.c.subsystem, effects.c.event_id, func.count()).group_by(
                effects.c.subsystem, effects.c.event_id
            )
        ).all()
    return {(s, e): n for s, e, n in rows}


def effects_in_order(db: Database, subsystem: str) -> list[tuple[str, int]]:
    with db.engine.connect() as conn:
        return [
            (c, n)
            for c, n in conn.execute(
                select(effects.c.customer_id, effects.c.n)
                .where(effects.c.subsystem == subsystem)
                .order_by(effects.c.pk)
            )
        ]


def pending_outbox(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(OutboxEvent.published_at.is_(None), OutboxEvent.dead_at.is_(None))
            ).scalar_one()
        )


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def fast_config(prefix: str, **overrides: Any) -> BusConfig:
    values: dict[str, Any] = {
        "prefix": prefix,
        "max_attempts": 3,
        "retry_delays_ms": (100, 200),
        "poll_interval": 0.02,
        "reconnect_delay": 0.2,
        "reconnect_delay_max": 1.0,
        "batch_size": 100,
        "prefetch": 300,
    }
    values.update(overrides)
    return BusConfig(**values)


# -- RabbitMQ helpers -------------------------------------------------------------------------


def queue_depth(url: str, name: str) -> int:
    async def go() -> int:
        conn = await aio_pika.connect(url)
        async with conn:
            ch = await conn.channel()
            q = await ch.declare_queue(name, passive=True)
            return int(q.declaration_result.message_count or 0)

    return asyncio.run(go())


def drain_queue(url: str, name: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Take every message off a queue: (body, headers)."""

    async def go() -> list[tuple[bytes, dict[str, Any]]]:
        conn = await aio_pika.connect(url)
        out: list[tuple[bytes, dict[str, Any]]] = []
        async with conn:
            ch = await conn.channel()
            q = await ch.declare_queue(name, passive=True)
            while True:
                msg = await q.get(fail=False, no_ack=True)
                if msg is None:
                    return out
                out.append((msg.body, dict(msg.headers or {})))

    return asyncio.run(go())


def publish_raw(url: str, config: BusConfig, routing_key: str, body: bytes) -> None:
    async def go() -> None:
        conn = await aio_pika.connect(url)
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            ex = await ch.get_exchange(config.exchange)
            await ex.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=routing_key,
            )

    asyncio.run(go())


def rabbit_connections(prefix: str) -> list[str]:
    """Broker-side pids of the connections this test's processes opened (their
    connection_name starts with the prefix)."""
    out = subprocess.run(
        ["rabbitmqctl", "list_connections", "-q", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [line.split("\t", 1)[0] for line in out.splitlines()[1:] if f"{prefix}:" in line and line.startswith("<")]


def close_rabbit_connections(prefix: str) -> int:
    """Force-close them, as an operator or a network failure would."""
    pids = rabbit_connections(prefix)
    closing = [
        subprocess.Popen(
            ["rabbitmqctl", "close_connection", pid, "test: connection dropped on purpose"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    for p in closing:
        assert p.wait(timeout=30) == 0, "rabbitmqctl close_connection failed"
    return len(pids)


def cleanup_rabbit(url: str, config: BusConfig, registry: HandlerRegistry) -> None:
    asyncio.run(delete_topology(url, config, registry))


# -- the bus harness ----------------------------------------------------------------------------


class Harness:
    """Drives the in-process bus or RabbitMQ (relay + consumers, in threads) alike."""

    def __init__(
        self,
        kind: str,
        db: Database,
        registry: HandlerRegistry,
        config: BusConfig,
        rabbit_url: str | None = None,
    ) -> None:
        self.kind, self.db, self.registry, self.config = kind, db, registry, config
        self.url = rabbit_url
        self.metrics = EventMetrics()
        self.threads: list[threading.Thread] = []
        self.stop_event = threading.Event()
        self.bus: InProcessBus | RabbitBus
        if kind == "inprocess":
            self.bus = InProcessBus(db, registry, config, metrics=self.metrics)
        else:
            assert rabbit_url
            self.bus = RabbitBus(db, rabbit_url, registry, config, metrics=self.metrics)

    def start(self) -> None:
        self.stop_event = threading.Event()
        # RabbitBus.run relays the outbox too, as `billing serve` and `billing worker` do.
        t = threading.Thread(target=self.bus.run, args=(self.stop_event,), daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:  # idempotent: the fixtures stop what a failed test left
            t.join(timeout=15)
            assert not t.is_alive(), "bus thread did not stop"
        self.threads.clear()

    def publish(self, envelopes: Iterable[Envelope]) -> None:
        self.bus.publish(envelopes)

    def dead_letters(self) -> dict[str, str]:
        """{event id: error} of dead-lettered events."""
        if self.kind == "inprocess":
            with self.db.engine.connect() as conn:
                rows = conn.execute(
                    select(OutboxEvent.id, OutboxEvent.last_error).where(OutboxEvent.dead_at.is_not(None))
                ).all()
            return {i: e or "" for i, e in rows}
        assert self.url
        out: dict[str, str] = {}
        for subsystem in self.registry.subsystems():
            for body, headers in drain_queue(self.url, self.config.dead_queue(subsystem)):
                try:
                    event_id = json.loads(body).get("id", "?")
                except ValueError:
                    event_id = "?"
                out[str(event_id)] = str(headers.get("x-error"))
        return out


def queue_consumers(url: str, name: str) -> int:
    async def go() -> int:
        conn = await aio_pika.connect(url)
        async with conn:
            ch = await conn.channel()
            try:
                q = await ch.declare_queue(name, passive=True)
            except Exception:
                return 0
            return int(q.declaration_result.consumer_count or 0)

    return asyncio.run(go())


def publish_to_queue(url: str, queue: str, body: bytes, type_: str | None = None) -> None:
    async def go() -> None:
        conn = await aio_pika.connect(url)
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.default_exchange.publish(
                aio_pika.Message(body, type=type_, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue,
            )

    asyncio.run(go())


class RelayThread:
    """An OutboxRelay running in a thread with its own event loop."""

    def __init__(
        self, db: Database, url: str, config: BusConfig, registry: HandlerRegistry, metrics: EventMetrics | None = None
    ) -> None:
        self.relay = OutboxRelay(db, url, config, registry, metrics or EventMetrics())
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.relay.run(self.stop_event)), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()
