"""RabbitMQ: topology, the outbox relay and the subsystem consumers (aio-pika).

Topology (declared, idempotently, by every relay and worker on start):

    {prefix}.events            durable topic exchange; routing key = event type;
                               alternate exchange {prefix}.unrouted (nothing is dropped)
    {prefix}.unrouted          fanout exchange + durable queue: events no subsystem binds
    {prefix}.{subsystem}       durable queue per subsystem, bound by its handler patterns
    {prefix}.{subsystem}.retry.{N}ms
                               durable delay queue: x-message-ttl N, dead-letters back to
                               {prefix}.{subsystem} through the default exchange
    {prefix}.{subsystem}.dead  durable dead-letter queue; headers x-error, x-attempts, ...

Messages are persistent and published with confirms; consumers ack manually, after their
transaction committed, with a prefetch limit. A failed attempt is republished (confirmed)
to the retry queue of the next delay with `x-attempt` + 1 before the original is acked, so
a crash in between repeats an attempt but never loses one; ids make the repeat harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)
from sqlalchemy import and_, select, text, update
from sqlalchemy.orm import Session

from engine.clock import Clock, SystemClock
from engine.events.apply import HandlerFailed, Outcome, apply_batch, describe_error
from engine.events.config import BusConfig
from engine.events.envelope import Envelope, PoisonMessage, parse_envelope
from engine.events.metrics import EventMetrics
from engine.events.metrics import metrics as default_metrics
from engine.events.registry import Handler, HandlerRegistry
from engine.events.registry import registry as default_registry
from engine.store.database import Database
from engine.store.outbox import OutboxEvent

log = logging.getLogger(__name__)

UNROUTED = "unrouted"
AfterCommit = Callable[[str, list[Outcome]], None]


def redact_url(url: str) -> str:
    """The URL without its password, for logs and `broker status`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def connect(url: str, role: str, config: BusConfig, timeout: float = 5.0) -> AbstractConnection:
    name = f"{config.prefix}:{role}:{os.getpid()}"
    return await aio_pika.connect(url, timeout=timeout, client_properties={"connection_name": name})


async def _sleep(stop: threading.Event, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not stop.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.05))


# -- topology ----------------------------------------------------------------------------


async def declare_topology(channel: AbstractChannel, config: BusConfig, registry: HandlerRegistry) -> AbstractExchange:
    """Declare exchanges, every subsystem's queues and bindings; returns the events exchange."""
    unrouted_ex = await channel.declare_exchange(config.unrouted_exchange, aio_pika.ExchangeType.FANOUT, durable=True)
    unrouted_q = await channel.declare_queue(config.unrouted_queue, durable=True)
    await unrouted_q.bind(unrouted_ex, routing_key="")
    exchange = await channel.declare_exchange(
        config.exchange,
        aio_pika.ExchangeType.TOPIC,
        durable=True,
        arguments={"alternate-exchange": config.unrouted_exchange},
    )
    for subsystem in registry.subsystems():
        queue = await channel.declare_queue(config.queue(subsystem), durable=True)
        for pattern in registry.patterns(subsystem):
            await queue.bind(exchange, routing_key=pattern)
        await channel.declare_queue(config.dead_queue(subsystem), durable=True)
        for delay in sorted(set(config.retry_delays_ms)):
            await channel.declare_queue(
                config.retry_queue(subsystem, delay),
                durable=True,
                arguments={
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": config.queue(subsystem),
                },
            )
    return exchange


def topology_queue_names(config: BusConfig, registry: HandlerRegistry) -> list[str]:
    names = [config.unrouted_queue]
    for subsystem in registry.subsystems():
        names.append(config.queue(subsystem))
        names.append(config.dead_queue(subsystem))
        names.extend(config.retry_queue(subsystem, d) for d in sorted(set(config.retry_delays_ms)))
    return names


async def delete_topology(url: str, config: BusConfig, registry: HandlerRegistry) -> None:
    """Remove every queue and exchange of `config.prefix` (tests and teardown)."""
    conn = await connect(url, "admin", config)
    async with conn:
        for name in topology_queue_names(config, registry):
            channel = await conn.channel()
            try:
                await channel.queue_delete(name)
            except Exception:  # already gone: the channel is closed, take another
                log.debug("queue %s not deleted", name, exc_info=True)
        for name in (config.exchange, config.unrouted_exchange):
            channel = await conn.channel()
            try:
                await channel.exchange_delete(name)
            except Exception:
                log.debug("exchange %s not deleted", name, exc_info=True)


def persistent_message(body: bytes, envelope: dict[str, Any] | Envelope, **headers: Any) -> aio_pika.Message:
    if isinstance(envelope, Envelope):
        message_id, event_type = envelope.id, envelope.type
    else:
        message_id, event_type = str(envelope.get("id")), str(envelope.get("type"))
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        type=event_type,
        headers=headers or None,
    )


# -- publishing ----------------------------------------------------------------------------


class RabbitPublisher:
    """One connection and one confirming channel; `publish` returns after every message
    was confirmed (all in flight at once), raising on the first failure."""

    def __init__(self, url: str, config: BusConfig, registry: HandlerRegistry, role: str = "publisher") -> None:
        self.url, self.config, self.registry, self.role = url, config, registry, role
        self.connection: AbstractConnection | None = None
        self.exchange: AbstractExchange | None = None

    async def open(self) -> None:
        self.connection = await connect(self.url, self.role, self.config)
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self.exchange = await declare_topology(channel, self.config, self.registry)

    @property
    def is_open(self) -> bool:
        return self.connection is not None and not self.connection.is_closed

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
        self.connection = self.exchange = None

    async def publish_raw(self, items: Sequence[tuple[str, aio_pika.Message]]) -> list[BaseException | None]:
        """Publish (routing_key, message) pairs concurrently, in order on the channel;
        returns None per confirmed message, the exception per failed one."""
        if self.exchange is None:
            raise RuntimeError("publisher is not open")
        exchange = self.exchange
        results = await asyncio.gather(
            *(
                exchange.publish(msg, routing_key=key, mandatory=True, timeout=self.config.publish_timeout)
                for key, msg in items
            ),
            return_exceptions=True,
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    async def publish(self, envelopes: Iterable[Envelope]) -> int:
        items = [(e.type, persistent_message(e.to_json(), e)) for e in envelopes]
        for failure in await self.publish_raw(items):
            if failure is not None:
                raise failure
        return len(items)


# -- the outbox relay ---------------------------------------------------------------------


class OutboxRelay:
    """Publishes committed outbox rows in `seq` order, marking them published only after
    the broker confirmed them. While the broker is unreachable rows stay in the outbox.

    Several relays may run on PostgreSQL: each locks its batch with FOR UPDATE SKIP LOCKED,
    and leaves out a customer whose earlier unsent rows another relay holds, so one
    customer's events reach the exchange in order. On SQLite run one relay.
    """

    def __init__(
        self,
        db: Database,
        url: str,
        config: BusConfig | None = None,
        registry: HandlerRegistry | None = None,
        metrics: EventMetrics | None = None,
    ) -> None:
        self.db, self.url = db, url
        self.config = config or BusConfig()
        self.registry = registry or default_registry
        self.metrics = metrics or default_metrics
        self.publisher = RabbitPublisher(url, self.config, self.registry, role="relay")

    async def _claim(self, in_flight: frozenset[int]) -> _RelayBatch | None:
        """Lock the next due rows in a transaction of their own and start publishing them
        (without waiting for the confirms). `in_flight`: this relay's rows still awaiting
        their confirms, published before these on the same channel."""
        o = OutboxEvent
        scope = self.db.session()
        session = scope.__enter__()
        try:
            # Plain rows, not ORM objects: the relay only serialises and marks them.
            query = (
                select(o.seq, o.id, o.type, o.customer_id, o.time, o.properties)
                .where(o.published_at.is_(None), o.dead_at.is_(None))
                .order_by(o.seq)
                .limit(self.config.relay_batch_size)
            )
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            rows = list(session.execute(query))
            if self.db.is_postgres:  # no rows: no customers, no query
                rows = self._without_blocked_customers(session, rows, in_flight)
            if not rows:
                scope.__exit__(None, None, None)
                return None
            items = []
            for row in rows:
                env = {
                    "id": row.id,
                    "type": row.type,
                    "customer_id": row.customer_id,
                    "time": row.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                    "properties": row.properties,
                }
                body = json.dumps(env, separators=(",", ":"), default=str).encode()
                items.append((row.type, persistent_message(body, env)))
            confirms = asyncio.ensure_future(self.publisher.publish_raw(items))
            await asyncio.sleep(0)  # let the publishes reach the channel, in order
        except BaseException as exc:
            scope.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return _RelayBatch(scope, session, rows, confirms)

    async def _settle(self, batch: _RelayBatch) -> int:
        """Wait for a claimed batch's confirms, mark the confirmed rows published and
        commit. Raises the first publish failure after committing the rest."""
        o = OutboxEvent
        wall = datetime.now(UTC)
        first_failure: BaseException | None = None
        confirmed: list[int] = []
        session = batch.session
        try:
            try:
                results = await batch.confirms
            except Exception as exc:  # the whole publish call failed
                results = [exc] * len(batch.rows)
            for row, failure in zip(batch.rows, results, strict=True):
                if failure is None:
                    confirmed.append(row.seq)
                    for subsystem in self.registry.subscribers(row.type) or [UNROUTED]:
                        self.metrics.inc(subsystem, "published")
                else:
                    first_failure = first_failure or failure
                    session.execute(
                        update(o)
                        .where(o.seq == row.seq)
                        .values(attempts=o.attempts + 1, last_error=describe_error(failure))
                    )
            if confirmed:
                if self.db.is_postgres:
                    # Losing this commit in a database crash only republishes the rows,
                    # which consumers skip by id: no need to wait for the WAL flush.
                    session.execute(text("SET LOCAL synchronous_commit = off"))
                session.execute(update(o).where(o.seq.in_(confirmed)).values(published_at=wall))
        except BaseException as exc:
            batch.scope.__exit__(type(exc), exc, exc.__traceback__)
            raise
        batch.scope.__exit__(None, None, None)
        if first_failure is not None:
            raise first_failure
        return len(confirmed)

    def _without_blocked_customers(self, session: Any, rows: list[Any], in_flight: frozenset[int]) -> list[Any]:
        """Leave out customers with an earlier unsent row that is neither in this batch nor
        in flight on this relay's channel: another relay holds it, and publishing ours
        first would reorder that customer's events."""
        mine = [r.seq for r in rows]
        customers = {r.customer_id for r in rows if r.customer_id is not None}
        if not customers:
            return rows
        o = OutboxEvent
        blocked = set(
            session.scalars(
                select(o.customer_id)
                .where(
                    and_(
                        o.published_at.is_(None),
                        o.dead_at.is_(None),
                        o.customer_id.in_(customers),
                        o.seq < max(mine),
                        o.seq.not_in([*mine, *in_flight]),
                    )
                )
                .distinct()
            )
        )
        return [r for r in rows if r.customer_id not in blocked]

    async def _pump(self, stop: threading.Event) -> None:
        """Relay until stopped or a publish fails. On PostgreSQL two batches overlap: the
        next one is claimed (SKIP LOCKED passes over the rows still locked by the first)
        and published while the first one's confirms come back."""
        outstanding: list[_RelayBatch] = []  # claimed, publishing, not yet settled
        try:
            while not stop.is_set():
                in_flight = frozenset(r.seq for b in outstanding for r in b.rows)
                claimed = None
                if not outstanding or self.db.is_postgres:
                    claimed = await self._claim(in_flight)
                    if claimed is not None:
                        outstanding.append(claimed)
                full = claimed is not None and len(claimed.rows) >= self.config.relay_batch_size
                # Keep one batch in flight while there is a backlog (PostgreSQL only).
                keep = 1 if full and self.db.is_postgres else 0
                while len(outstanding) > keep:
                    await self._settle(outstanding.pop(0))
                if claimed is None:  # idle: poll; otherwise look again at once
                    await _sleep(stop, self.config.poll_interval)
        finally:
            for batch in outstanding:  # release the locks, keep what was confirmed
                try:
                    await self._settle(batch)
                except Exception:
                    log.debug("relay: settling a batch after a failure", exc_info=True)

    async def run(self, stop: threading.Event) -> None:
        delay = self.config.reconnect_delay
        while not stop.is_set():
            try:
                if not self.publisher.is_open:
                    await self.publisher.close()
                    await self.publisher.open()
                    log.info("relay connected to %s", redact_url(self.url))
                delay = self.config.reconnect_delay
                await self._pump(stop)
            except Exception as exc:
                log.warning(
                    "relay: broker unavailable (%s); outbox rows kept, retry in %.1fs",
                    describe_error(exc),
                    delay,
                )
                try:
                    await self.publisher.close()
                except Exception:
                    log.debug("relay: closing a broken connection failed", exc_info=True)
                self.publisher.connection = None
                await _sleep(stop, delay)
                delay = min(delay * 2, self.config.reconnect_delay_max)
        await self.publisher.close()


@dataclass
class _RelayBatch:
    scope: AbstractContextManager[Session]
    session: Session
    rows: list[Any]
    confirms: asyncio.Future[list[BaseException | None]]


# -- consumers ----------------------------------------------------------------------------


class QueueConsumer:
    """Consumes one subsystem's queue: batches of up to `batch_size` messages are applied in
    one database transaction (in a worker thread), then settled and acked."""

    def __init__(
        self,
        db: Database,
        subsystem: str,
        url: str,
        config: BusConfig | None = None,
        registry: HandlerRegistry | None = None,
        metrics: EventMetrics | None = None,
        clock: Clock | None = None,
        after_commit: AfterCommit | None = None,
    ) -> None:
        self.db, self.subsystem, self.url = db, subsystem, url
        self.config = config or BusConfig()
        self.registry = registry or default_registry
        self.metrics = metrics or default_metrics
        self.clock = clock or SystemClock()
        self.after_commit = after_commit
        self._delay = self.config.reconnect_delay

    async def run(self, stop: threading.Event) -> None:
        self._delay = self.config.reconnect_delay
        while not stop.is_set():
            try:
                await self._session(stop)
            except Exception as exc:
                log.warning(
                    "worker %s: %s; reconnecting in %.1fs",
                    self.subsystem,
                    describe_error(exc),
                    self._delay,
                )
                await _sleep(stop, self._delay)
                self._delay = min(self._delay * 2, self.config.reconnect_delay_max)

    async def _session(self, stop: threading.Event) -> None:
        connection = await connect(self.url, f"worker-{self.subsystem}", self.config)
        closed = asyncio.Event()
        connection.close_callbacks.add(lambda *_: closed.set())
        try:
            channel = await connection.channel(publisher_confirms=True)
            channel.close_callbacks.add(lambda *_: closed.set())
            await channel.set_qos(prefetch_count=self.config.prefetch)
            await declare_topology(channel, self.config, self.registry)
            queue = await channel.get_queue(self.config.queue(self.subsystem), ensure=False)
            inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

            async def on_message(message: AbstractIncomingMessage) -> None:
                await inbox.put(message)

            tag = await queue.consume(on_message, no_ack=False)
            log.info("worker %s consuming %s", self.subsystem, queue.name)
            self._delay = self.config.reconnect_delay
            while not stop.is_set():
                if closed.is_set():
                    raise ConnectionError("broker connection closed")
                try:
                    first = await asyncio.wait_for(inbox.get(), 0.1)
                except TimeoutError:
                    continue
                batch = [first]
                while len(batch) < self.config.batch_size and not inbox.empty():
                    batch.append(inbox.get_nowait())
                await self._handle(channel, batch)
            # Graceful stop: the batch in hand is settled; what is prefetched but untouched
            # returns to the queue when the channel closes.
            await queue.cancel(tag)
        finally:
            if not connection.is_closed:
                await connection.close()

    async def _handle(self, channel: AbstractChannel, batch: list[AbstractIncomingMessage]) -> None:
        good: list[tuple[AbstractIncomingMessage, Envelope]] = []
        for message in batch:
            try:
                good.append((message, parse_envelope(message.body)))
            except PoisonMessage as exc:
                await self._dead_letter(channel, message, f"poison message: {exc}", _attempt(message))
        if good:
            outcomes = await asyncio.to_thread(self._apply, [env for _, env in good])
            if self.after_commit is not None:
                self.after_commit(self.subsystem, outcomes)
            for (message, _), outcome in zip(good, outcomes, strict=True):
                await self._settle(channel, message, outcome)
        # Everything in the batch is settled (applied, retried or dead-lettered): one ack.
        await batch[-1].ack(multiple=True)

    def _apply(self, envelopes: list[Envelope]) -> list[Outcome]:
        now = self.clock.now()
        try:  # the whole batch in one transaction of its own: no savepoint needed
            with self.db.session() as session:
                return apply_batch(session, self.subsystem, envelopes, self.registry, now, isolate=False)
        except HandlerFailed:
            pass  # rolled back: apply it again, one savepoint per event
        with self.db.session() as session:
            return apply_batch(session, self.subsystem, envelopes, self.registry, now, isolate=True)

    async def _settle(self, channel: AbstractChannel, message: AbstractIncomingMessage, outcome: Outcome) -> None:
        sub = self.subsystem
        if outcome.status != "failed":
            self.metrics.inc(sub, "consumed")
            self.metrics.inc(sub, {"applied": "applied", "duplicate": "duplicates"}.get(outcome.status, "unhandled"))
            if outcome.status == "unhandled":
                log.info(
                    "worker %s: no handler for %s (%s); acknowledged", sub, outcome.envelope.type, outcome.envelope.id
                )
            return
        self.metrics.inc(sub, "failed")
        attempt = _attempt(message)
        error = outcome.error or "handler failed"
        if attempt >= self.config.max_attempts:
            await self._dead_letter(channel, message, f"handler failed {attempt} times: {error}", attempt)
            return
        delay = self.config.retry_delay_ms(attempt)
        headers = dict(message.headers or {})
        headers.update({"x-attempt": attempt + 1, "x-last-error": error})
        retry = aio_pika.Message(
            message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
            headers=headers,
        )
        await channel.default_exchange.publish(
            retry, routing_key=self.config.retry_queue(sub, delay), timeout=self.config.publish_timeout
        )
        self.metrics.inc(sub, "retried")
        log.warning(
            "worker %s: %s failed (attempt %d), retry in %d ms: %s", sub, outcome.envelope.id, attempt, delay, error
        )

    async def _dead_letter(
        self, channel: AbstractChannel, message: AbstractIncomingMessage, reason: str, attempts: int
    ) -> None:
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-error": reason[:4000],
                "x-attempts": attempts,
                "x-subsystem": self.subsystem,
                "x-original-routing-key": message.routing_key or "",
                "x-dead-lettered-at": datetime.now(UTC).isoformat(),
            }
        )
        dead = aio_pika.Message(
            message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
            headers=headers,
        )
        await channel.default_exchange.publish(
            dead, routing_key=self.config.dead_queue(self.subsystem), timeout=self.config.publish_timeout
        )
        self.metrics.inc(self.subsystem, "dead_lettered")
        log.error("worker %s: message %s dead-lettered: %s", self.subsystem, message.message_id, reason)


def _attempt(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get("x-attempt", 1)
    try:
        return max(1, int(str(value)))
    except (TypeError, ValueError):
        return 1


class RabbitBus:
    """The broker-backed bus: `publish` sends envelopes with confirms; `run` consumes the
    given subsystems' queues until stopped. Committed state changes reach it through the
    outbox relay (`OutboxRelay`), not through `publish`."""

    kind = "rabbitmq"

    def __init__(
        self,
        db: Database,
        url: str,
        registry: HandlerRegistry | None = None,
        config: BusConfig | None = None,
        clock: Clock | None = None,
        metrics: EventMetrics | None = None,
        after_commit: AfterCommit | None = None,
    ) -> None:
        self.db, self.url = db, url
        self.registry = registry or default_registry
        self.config = config or BusConfig()
        self.clock = clock or SystemClock()
        self.metrics = metrics or default_metrics
        self.after_commit = after_commit

    def subscribe(self, subsystem: str, pattern: str, fn: Handler) -> None:
        self.registry.register(subsystem, pattern, fn)

    def publish(self, envelopes: Iterable[Envelope]) -> int:
        envs = list(envelopes)

        async def go() -> int:
            publisher = RabbitPublisher(self.url, self.config, self.registry)
            await publisher.open()
            try:
                return await publisher.publish(envs)
            finally:
                await publisher.close()

        return asyncio.run(go())

    def consumers(self, subsystems: Sequence[str]) -> list[QueueConsumer]:
        return [
            QueueConsumer(self.db, s, self.url, self.config, self.registry, self.metrics, self.clock, self.after_commit)
            for s in subsystems
        ]

    def run(
        self,
        stop_event: threading.Event,
        subsystems: Sequence[str] | None = None,
        *,
        with_relay: bool = True,
    ) -> None:
        """Consume `subsystems` (default: all) until `stop_event` is set. Unless
        `with_relay` is False it also relays the outbox in the same event loop (several
        relays are safe), so a process running the bus publishes what it commits."""
        names = list(subsystems or self.registry.subsystems())

        async def go() -> None:
            tasks = [c.run(stop_event) for c in self.consumers(names)]
            if with_relay:
                relay = OutboxRelay(self.db, self.url, self.config, self.registry, self.metrics)
                tasks.append(relay.run(stop_event))
            await asyncio.gather(*tasks)

        asyncio.run(go())
