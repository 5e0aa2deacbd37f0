"""Publishing with confirms: a persistent message per envelope, and one connection and confirming
channel that publishes them all in flight at once. Moved from engine/events/rabbit.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractConnection,
    AbstractExchange,
)

from engine.events.config import BusConfig
from engine.events.envelope import Envelope
from engine.events.rabbit.connection import connect
from engine.events.rabbit.topology import declare_topology
from engine.events.registry import HandlerRegistry


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
