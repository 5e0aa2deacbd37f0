"""A subsystem's consumer: batches of messages applied in one transaction, then settled (applied,
retried through the delay queues, or dead-lettered) and acked. Moved from engine/events/rabbit.py."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
)

from engine.clock import Clock, SystemClock
from engine.events.apply import HandlerFailed, Outcome, apply_batch, describe_error
from engine.events.config import BusConfig
from engine.events.envelope import Envelope, PoisonMessage, parse_envelope
from engine.events.metrics import EventMetrics
from engine.events.metrics import metrics as default_metrics
from engine.events.rabbit.connection import connect, sleep_unless_stopped
from engine.events.rabbit.topology import declare_topology
from engine.events.registry import HandlerRegistry
from engine.events.registry import registry as default_registry
from engine.store.database import Database

log = logging.getLogger(__name__)


AfterCommit = Callable[[str, list[Outcome]], None]


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
                await sleep_unless_stopped(stop, self._delay)
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
        await self._republish(
            channel, message, {"x-attempt": attempt + 1, "x-last-error": error}, self.config.retry_queue(sub, delay)
        )
        self.metrics.inc(sub, "retried")
        log.warning(
            "worker %s: %s failed (attempt %d), retry in %d ms: %s", sub, outcome.envelope.id, attempt, delay, error
        )

    async def _dead_letter(
        self, channel: AbstractChannel, message: AbstractIncomingMessage, reason: str, attempts: int
    ) -> None:
        headers = {
            "x-error": reason[:4000],
            "x-attempts": attempts,
            "x-subsystem": self.subsystem,
            "x-original-routing-key": message.routing_key or "",
            "x-dead-lettered-at": datetime.now(UTC).isoformat(),
        }
        await self._republish(channel, message, headers, self.config.dead_queue(self.subsystem))
        self.metrics.inc(self.subsystem, "dead_lettered")
        log.error("worker %s: message %s dead-lettered: %s", self.subsystem, message.message_id, reason)

    async def _republish(
        self, channel: AbstractChannel, message: AbstractIncomingMessage, headers: dict[str, Any], queue: str
    ) -> None:
        """The message again, persistent, with `headers` added to its own, to `queue` (a retry
        queue or the dead-letter queue) through the default exchange, confirmed."""
        again = aio_pika.Message(
            message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
            headers={**(message.headers or {}), **headers},
        )
        await channel.default_exchange.publish(again, routing_key=queue, timeout=self.config.publish_timeout)


def _attempt(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get("x-attempt", 1)
    try:
        return max(1, int(str(value)))
    except (TypeError, ValueError):
        return 1
