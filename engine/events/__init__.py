"""The event backbone: one bus interface, two implementations.

- In-process (BILLING_BROKER_URL empty): the outbox table is the durable queue; a
  dispatcher applies due rows to every subscribed subsystem.
- RabbitMQ (BILLING_BROKER_URL=amqp://...): an outbox relay publishes committed rows with
  confirms; one worker per subsystem consumes its durable queue, with retries on growing
  delays and a dead-letter queue.

Producing an event: `engine.store.add_event(session, type, customer_id, properties,
time=clock.now())` inside the transaction of the state change.
Consuming: `register_handler(subsystem, pattern, fn)` with `fn(session, envelope)`; the bus
runs it in a transaction together with the event's processed-record (exactly one effect).
"""

from engine.events.apply import Outcome, apply_batch
from engine.events.config import BusConfig
from engine.events.counters import all_processes as counters_of_all_processes
from engine.events.counters import start_flusher as start_counter_flusher
from engine.events.envelope import Envelope, PoisonMessage, envelope_from_dict, parse_envelope
from engine.events.informational import INFORMATIONAL
from engine.events.inprocess import InProcessBus
from engine.events.metrics import EventMetrics, metrics, render_prometheus
from engine.events.rabbit import OutboxRelay, QueueConsumer, RabbitBus, declare_topology, delete_topology
from engine.events.registry import (
    SUBSYSTEMS,
    BatchHandler,
    Handler,
    HandlerRegistry,
    handles,
    register_handler,
    registry,
    topic_matches,
)
from engine.events.runtime import (
    EventBus,
    broker_status,
    install_signal_handlers,
    make_bus,
    outbox_status,
    run_relay,
    run_worker,
)
from engine.store.outbox import prune as prune_events

__all__ = [
    "INFORMATIONAL",
    "SUBSYSTEMS",
    "BatchHandler",
    "BusConfig",
    "Envelope",
    "EventBus",
    "EventMetrics",
    "Handler",
    "HandlerRegistry",
    "InProcessBus",
    "OutboxRelay",
    "Outcome",
    "PoisonMessage",
    "QueueConsumer",
    "RabbitBus",
    "apply_batch",
    "broker_status",
    "counters_of_all_processes",
    "declare_topology",
    "delete_topology",
    "envelope_from_dict",
    "handles",
    "install_signal_handlers",
    "make_bus",
    "metrics",
    "outbox_status",
    "parse_envelope",
    "prune_events",
    "register_handler",
    "registry",
    "render_prometheus",
    "run_relay",
    "run_worker",
    "start_counter_flusher",
    "topic_matches",
]
