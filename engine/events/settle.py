"""Waiting until a broker-backed system is quiet: every committed event applied by every
subsystem that subscribes to it.

The in-process bus drains synchronously (`InProcessBus.drain`). With RabbitMQ the events are
applied by other processes (`billing worker`), so the process that moved a test clock waits
instead: an event is done when each of its subscribers recorded it in `processed_events`
(the idempotency record written in the handler's own transaction). Queue depths would not
do: a message being handled is in no queue's count, and its effects are not committed yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select, tuple_

from engine.events.registry import HandlerRegistry
from engine.store import Database, OutboxEvent, ProcessedEvent


class NotSettled(RuntimeError):
    """Events were still unapplied when the wait ran out (a failing handler retrying, a
    worker down)."""


@dataclass
class Settler:
    db: Database
    registry: HandlerRegistry
    poll: float = 0.01
    # Every outbox row up to this seq is applied by all its subscribers.
    done_through: int = 0

    def pending(self) -> int:
        """How many events past the watermark are not applied everywhere yet (moving the
        watermark over the ones that are, in order)."""
        with self.db.read_session() as session:
            rows = session.execute(
                select(OutboxEvent.seq, OutboxEvent.id, OutboxEvent.type, OutboxEvent.dead_at)
                .where(OutboxEvent.seq > self.done_through)
                .order_by(OutboxEvent.seq)
            ).all()
            wanted = {(sub, row.id) for row in rows for sub in self.registry.subscribers(row.type)}
            applied: set[tuple[str, str]] = set()
            pairs = list(wanted)
            for i in range(0, len(pairs), 500):
                chunk = pairs[i : i + 500]
                applied.update(
                    (c, e)
                    for c, e in session.execute(
                        select(ProcessedEvent.consumer, ProcessedEvent.event_id).where(
                            tuple_(ProcessedEvent.consumer, ProcessedEvent.event_id).in_(chunk)
                        )
                    ).all()
                )
        left = 0
        for row in rows:
            if row.dead_at is None and any((sub, row.id) not in applied for sub in self.registry.subscribers(row.type)):
                left += 1
            elif not left:  # every row before it is done too: the watermark moves over it
                self.done_through = row.seq
        return left

    def wait(self, timeout: float = 60.0) -> None:
        """Return once nothing is pending; NotSettled after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.pending()
            if left == 0:
                return
            if time.monotonic() > deadline:
                raise NotSettled(f"{left} event(s) not yet applied by their subscribers after {timeout:.0f} s")
            time.sleep(self.poll)
