"""The topology every relay and worker declares (idempotently) on start, the list of its queues,
and its removal (tests and teardown). Moved from engine/events/rabbit.py."""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
)

from engine.events.config import BusConfig
from engine.events.rabbit.connection import connect
from engine.events.registry import HandlerRegistry

log = logging.getLogger(__name__)


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
