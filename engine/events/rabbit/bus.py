"""The broker-backed bus: publishing envelopes, and running the consumers (and the relay) of
subsystems until stopped. Moved from engine/events/rabbit.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence

from engine.clock import Clock, SystemClock
from engine.events.config import BusConfig
from engine.events.envelope import Envelope
from engine.events.metrics import EventMetrics
from engine.events.metrics import metrics as default_metrics
from engine.events.rabbit.consumer import AfterCommit, QueueConsumer
from engine.events.rabbit.publisher import RabbitPublisher
from engine.events.rabbit.relay import OutboxRelay
from engine.events.registry import Handler, HandlerRegistry
from engine.events.registry import registry as default_registry
from engine.store.database import Database


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
