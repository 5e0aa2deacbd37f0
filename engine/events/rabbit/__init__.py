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

One module per job: `connection` (connect, the redacted URL, the stoppable wait), `topology`
(declare, list, delete), `publisher` (confirmed publishing), `relay` (the outbox relay),
`consumer` (a subsystem's queue consumer) and `bus` (`RabbitBus`). Names are importable from
here as they were from the single module this package replaces.
"""

from engine.events.rabbit.bus import RabbitBus
from engine.events.rabbit.connection import connect, redact_url
from engine.events.rabbit.consumer import AfterCommit, QueueConsumer
from engine.events.rabbit.publisher import RabbitPublisher, persistent_message
from engine.events.rabbit.relay import UNROUTED, OutboxRelay
from engine.events.rabbit.topology import declare_topology, delete_topology, topology_queue_names

__all__ = [
    "UNROUTED",
    "AfterCommit",
    "OutboxRelay",
    "QueueConsumer",
    "RabbitBus",
    "RabbitPublisher",
    "connect",
    "declare_topology",
    "delete_topology",
    "persistent_message",
    "redact_url",
    "topology_queue_names",
]
