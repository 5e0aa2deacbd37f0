"""Entry points the CLI and the API wire in: `run_worker`, `run_relay`, `broker_status`,
`make_bus`. Configuration alone picks the bus: an empty BILLING_BROKER_URL is in-process.

The subsystems register their handlers when their packages are imported; the caller (the
CLI, the API) imports them before calling these functions.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from engine.clock import Clock
from engine.config import Settings, get_settings
from engine.events.config import BusConfig
from engine.events.counters import start_flusher
from engine.events.inprocess import InProcessBus
from engine.events.metrics import EventMetrics
from engine.events.metrics import metrics as default_metrics
from engine.events.rabbit import (
    AfterCommit,
    OutboxRelay,
    RabbitBus,
    connect,
    redact_url,
)
from engine.events.registry import HandlerRegistry
from engine.events.registry import registry as default_registry
from engine.store.database import Database, database_of
from engine.store.outbox import OutboxEvent

log = logging.getLogger(__name__)

EventBus = InProcessBus | RabbitBus


def make_bus(
    settings: Settings | None = None,
    db: Database | None = None,
    registry: HandlerRegistry | None = None,
    config: BusConfig | None = None,
    clock: Clock | None = None,
    metrics: EventMetrics | None = None,
    after_commit: AfterCommit | None = None,
) -> EventBus:
    settings = settings or get_settings()
    db = db or database_of(settings)
    config = config or BusConfig.from_env()
    if settings.broker_url:
        return RabbitBus(db, settings.broker_url, registry, config, clock, metrics, after_commit)
    return InProcessBus(db, registry, config, clock, metrics)


def install_signal_handlers(stop_event: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop_event`: the worker finishes the batch in hand, acks it
    and exits. Only from the main thread (Python's rule for signal handlers)."""

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d: finishing the messages in hand, then stopping", signum)
        stop_event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _stop_event(stop_event: threading.Event | None) -> threading.Event:
    """The caller's stop event, or a new one wired to SIGTERM/SIGINT when we are the main
    thread of a process (`billing worker`)."""
    if stop_event is not None:
        return stop_event
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        install_signal_handlers(stop)
    return stop


def _subsystems(subsystem: str, registry: HandlerRegistry) -> list[str]:
    known = registry.subsystems()
    if subsystem == "all":
        return known
    if subsystem not in known:
        raise ValueError(f"unknown subsystem {subsystem!r}; one of {', '.join([*known, 'all'])}")
    return [subsystem]


def run_worker(
    subsystem: str,
    handlers: HandlerRegistry | None = None,
    settings: Settings | None = None,
    stop_event: threading.Event | None = None,
    *,
    db: Database | None = None,
    config: BusConfig | None = None,
    clock: Clock | None = None,
    after_commit: AfterCommit | None = None,
    with_relay: bool = True,
) -> None:
    """`billing worker --subsystem S`: consume S's queue (or all of them) until
    `stop_event` is set. With RabbitMQ it also relays the outbox unless `with_relay` is
    False, so a deployment needs no separate relay process (several relays are safe).
    Without a broker it runs the in-process dispatcher, which serves every subsystem at
    once (an outbox row is done when all its subscribers applied it)."""
    registry = handlers or default_registry
    names = _subsystems(subsystem, registry)
    stop = _stop_event(stop_event)
    db = db or database_of(settings or get_settings())
    bus = make_bus(settings, db, registry, config, clock, after_commit=after_commit)
    log.info("worker %s on the %s bus", subsystem, bus.kind)
    # This process's counters, for the /metrics of the API process (another process).
    flushing = threading.Event()
    flusher = start_flusher(db, flushing)
    try:
        if isinstance(bus, RabbitBus):
            bus.run(stop, names, with_relay=with_relay)
        else:
            bus.run(stop, names)
    finally:
        flushing.set()  # and a last write of the totals
        flusher.join(10)


def run_relay(
    settings: Settings | None = None,
    stop_event: threading.Event | None = None,
    *,
    db: Database | None = None,
    config: BusConfig | None = None,
    handlers: HandlerRegistry | None = None,
    clock: Clock | None = None,
) -> None:
    """Publish the outbox to RabbitMQ until `stop_event` is set; in-process, dispatch it."""
    settings = settings or get_settings()
    stop = _stop_event(stop_event)
    registry = handlers or default_registry
    db = db or database_of(settings)
    config = config or BusConfig.from_env()
    if not settings.broker_url:
        InProcessBus(db, registry, config, clock).run(stop)
        return
    relay = OutboxRelay(db, settings.broker_url, config, registry)
    asyncio.run(relay.run(stop))


# -- status ---------------------------------------------------------------------------------


def outbox_status(db: Database) -> dict[str, Any]:
    with db.session() as session:
        pending_q = select(func.count(), func.min(OutboxEvent.time)).where(
            OutboxEvent.published_at.is_(None), OutboxEvent.dead_at.is_(None)
        )
        pending, oldest = session.execute(pending_q).one()
        retrying = session.execute(
            select(func.count()).where(
                OutboxEvent.published_at.is_(None),
                OutboxEvent.dead_at.is_(None),
                OutboxEvent.attempts > 0,
            )
        ).scalar_one()
        dead = session.execute(select(func.count()).where(OutboxEvent.dead_at.is_not(None))).scalar_one()
        sent = session.execute(select(func.count()).where(OutboxEvent.published_at.is_not(None))).scalar_one()
    return {
        # COUNT(*) is never NULL
        "pending": int(pending),
        "retrying": int(retrying),
        "dead": int(dead),
        "published": int(sent),
        "oldest_pending_time": oldest.isoformat() if oldest else None,
    }


def _inprocess_queues(db: Database, registry: HandlerRegistry) -> list[dict[str, Any]]:
    with db.session() as session:
        pending = session.execute(
            select(OutboxEvent.type, func.count())
            .where(OutboxEvent.published_at.is_(None), OutboxEvent.dead_at.is_(None))
            .group_by(OutboxEvent.type)
        ).all()
        dead = session.execute(
            select(OutboxEvent.type, func.count()).where(OutboxEvent.dead_at.is_not(None)).group_by(OutboxEvent.type)
        ).all()
    queues = []
    for subsystem in registry.subsystems():
        queues.append(
            {
                "subsystem": subsystem,
                "queue": f"outbox:{subsystem}",
                "patterns": registry.patterns(subsystem),
                "messages": sum(n for t, n in pending if subsystem in registry.subscribers(t)),
                "retrying": None,
                "dead_letters": sum(n for t, n in dead if subsystem in registry.subscribers(t)),
                "consumers": None,
            }
        )
    return queues


async def _rabbit_queues(url: str, config: BusConfig, registry: HandlerRegistry) -> dict[str, Any]:
    conn = await connect(url, "status", config)
    async with conn:
        channel = await conn.channel()

        async def depth(name: str) -> tuple[int | None, int | None]:
            nonlocal channel
            try:
                q = await channel.declare_queue(name, passive=True)
                result = q.declaration_result
                return result.message_count, result.consumer_count
            except Exception:  # not declared yet: the broker closed the channel
                channel = await conn.channel()
                return None, None

        queues = []
        for subsystem in registry.subsystems():
            messages, consumers = await depth(config.queue(subsystem))
            dead, _ = await depth(config.dead_queue(subsystem))
            retrying = 0
            for delay in sorted(set(config.retry_delays_ms)):
                n, _ = await depth(config.retry_queue(subsystem, delay))
                retrying += n or 0
            queues.append(
                {
                    "subsystem": subsystem,
                    "queue": config.queue(subsystem),
                    "patterns": registry.patterns(subsystem),
                    "messages": messages,
                    "retrying": retrying,
                    "dead_letters": dead,
                    "consumers": consumers,
                    "declared": messages is not None,
                }
            )
        unrouted, _ = await depth(config.unrouted_queue)
    return {"exchange": config.exchange, "queues": queues, "unrouted": unrouted}


def broker_status(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    config: BusConfig | None = None,
    handlers: HandlerRegistry | None = None,
    metrics: EventMetrics | None = None,
) -> dict[str, Any]:
    """What `billing broker status` prints: the bus, each queue's depth, retries and dead
    letters, the outbox backlog, and this process's counters. Never raises for an
    unreachable broker or database: it reports them."""
    settings = settings or get_settings()
    config = config or BusConfig.from_env()
    registry = handlers or default_registry
    status: dict[str, Any] = {
        "bus": "in-process",  # or rabbitmq, below
        "checked_at": datetime.now(UTC).isoformat(),
    }
    own_db = db is None
    database = db or database_of(settings)
    try:
        try:
            status["outbox"] = outbox_status(database)
        except Exception as exc:
            status["outbox"] = {"error": f"{type(exc).__name__}: {exc}"}
        if settings.broker_url:
            status["bus"] = "rabbitmq"
            status["broker_url"] = redact_url(settings.broker_url)
            try:
                status.update(asyncio.run(_rabbit_queues(settings.broker_url, config, registry)))
                status["reachable"] = True
            except Exception as exc:
                status["reachable"] = False
                status["error"] = f"{type(exc).__name__}: {exc}"
        else:
            try:
                status["queues"] = _inprocess_queues(database, registry)
            except Exception as exc:
                status["error"] = f"{type(exc).__name__}: {exc}"
            status["reachable"] = True
    finally:
        if own_db:
            database.dispose()
    status["counters"] = (metrics or default_metrics).snapshot()
    return status
