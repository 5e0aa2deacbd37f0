"""The embedded bus: no broker, the outbox table is the durable queue.

A dispatcher takes due outbox rows in `seq` order (FOR UPDATE SKIP LOCKED on PostgreSQL, so
several dispatchers never take the same row), applies each to every subscribed subsystem
with `apply_batch` (mark_processed and the effects in the same transaction), and marks the
row done in that same transaction. A failing handler leaves the row pending with a growing
delay; after `max_attempts` the row is dead-lettered (`dead_at`, `last_error`). Nothing is
held in memory, so a restart loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select

from engine.clock import Clock, SystemClock
from engine.events.apply import Outcome, apply_batch
from engine.events.config import BusConfig
from engine.events.envelope import Envelope, PoisonMessage, envelope_from_dict
from engine.events.metrics import EventMetrics
from engine.events.metrics import metrics as default_metrics
from engine.events.registry import Handler, HandlerRegistry
from engine.events.registry import registry as default_registry
from engine.store.database import Database
from engine.store.outbox import OutboxEvent

log = logging.getLogger(__name__)

UNROUTED = "unrouted"


def _wall_now() -> datetime:
    # Retry delays are infrastructure time, not business time: a test clock that stands
    # still must not stop retries.
    return datetime.now(UTC)


class InProcessBus:
    kind = "in-process"

    def __init__(
        self,
        db: Database,
        registry: HandlerRegistry | None = None,
        config: BusConfig | None = None,
        clock: Clock | None = None,
        metrics: EventMetrics | None = None,
    ) -> None:
        self.db = db
        self.registry = registry or default_registry
        self.config = config or BusConfig()
        self.clock = clock or SystemClock()
        self.metrics = metrics or default_metrics
        self._wake = threading.Event()

    # -- the bus interface ---------------------------------------------------------------
    def subscribe(self, subsystem: str, pattern: str, fn: Handler) -> None:
        self.registry.register(subsystem, pattern, fn)

    def publish(self, envelopes: Iterable[Envelope]) -> int:
        """Queue envelopes (in their own transaction); ids already in the outbox are
        ignored. Code that changes state uses `add_event` in its own transaction instead."""
        envs = list(envelopes)
        added = 0
        with self.db.session() as session:
            known = set(session.scalars(select(OutboxEvent.id).where(OutboxEvent.id.in_([e.id for e in envs]))))
            for env in envs:
                if env.id in known:
                    continue
                known.add(env.id)
                session.add(
                    OutboxEvent(
                        id=env.id,
                        type=env.type,
                        customer_id=env.customer_id,
                        time=env.time,
                        properties=env.properties,
                    )
                )
                added += 1
        self.wake()
        return added

    def run(self, stop_event: threading.Event, subsystems: Sequence[str] | None = None) -> None:
        """Dispatch until `stop_event` is set. In-process there is one dispatcher for all
        subsystems (a row is done when every subscriber has applied it), so `subsystems` is
        accepted for interface parity and ignored."""
        while not stop_event.is_set():
            try:
                n = self.dispatch_once()
            except Exception:
                log.exception("in-process dispatch failed; retrying")
                n = 0
                stop_event.wait(self.config.reconnect_delay)
            if n == 0:
                self._wake.wait(self.config.poll_interval)
                self._wake.clear()

    # -- dispatching ---------------------------------------------------------------------
    def wake(self) -> None:
        """Tell a running dispatcher that rows were committed (saves a poll interval)."""
        self._wake.set()

    def drain(self, max_rounds: int = 10_000) -> int:
        """Dispatch until nothing is due; returns the number of rows taken."""
        total = 0
        for _ in range(max_rounds):
            n = self.dispatch_once()
            if n == 0:
                break
            total += n
        return total

    def dispatch_once(self, limit: int | None = None) -> int:
        """Take one batch of due rows and apply it; returns how many rows were taken."""
        limit = limit or self.config.batch_size
        wall = _wall_now()
        with self.db.session() as session:
            query = (
                select(OutboxEvent)
                .where(
                    OutboxEvent.published_at.is_(None),
                    OutboxEvent.dead_at.is_(None),
                    or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= wall),
                )
                .order_by(OutboxEvent.seq)
                .limit(limit)
            )
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            rows = list(session.scalars(query))
            if not rows:
                return 0

            envelopes: dict[int, Envelope] = {}
            for row in rows:
                try:
                    envelopes[row.seq] = envelope_from_dict(row.envelope())
                except PoisonMessage as exc:
                    row.dead_at = wall
                    row.last_error = f"invalid envelope: {exc}"
                    self.metrics.inc(UNROUTED, "dead_lettered")

            errors: dict[int, list[str]] = {}
            failed_subsystems: dict[int, list[str]] = {}
            by_seq = {row.seq: row for row in rows}
            now = self.clock.now()
            for subsystem in self.registry.subsystems():
                batch = [
                    (seq, env) for seq, env in envelopes.items() if self.registry.handlers_for(subsystem, env.type)
                ]
                if not batch:
                    continue
                for seq, _ in batch:
                    if by_seq[seq].attempts == 0:
                        self.metrics.inc(subsystem, "published")
                outcomes = apply_batch(session, subsystem, [e for _, e in batch], self.registry, now)
                for (seq, _), outcome in zip(batch, outcomes, strict=True):
                    self._count(subsystem, outcome)
                    if outcome.status == "failed":
                        errors.setdefault(seq, []).append(f"{subsystem}: {outcome.error}")
                        failed_subsystems.setdefault(seq, []).append(subsystem)

            for seq, env in envelopes.items():
                row = by_seq[seq]
                if not self.registry.subscribers(env.type):
                    self.metrics.inc(UNROUTED, "unhandled")
                if seq not in errors:
                    row.published_at = wall
                    row.next_attempt_at = None
                    continue
                row.attempts += 1
                row.last_error = "; ".join(errors[seq])
                if row.attempts >= self.config.max_attempts:
                    row.dead_at = wall
                    for subsystem in failed_subsystems[seq]:
                        self.metrics.inc(subsystem, "dead_lettered")
                    log.error("event %s dead-lettered after %d attempts: %s", row.id, row.attempts, row.last_error)
                else:
                    delay = self.config.retry_delay_ms(row.attempts)
                    row.next_attempt_at = wall + timedelta(milliseconds=delay)
                    for subsystem in failed_subsystems[seq]:
                        self.metrics.inc(subsystem, "retried")
            return len(rows)

    def _count(self, subsystem: str, outcome: Outcome) -> None:
        if outcome.status == "failed":
            self.metrics.inc(subsystem, "failed")
            return
        self.metrics.inc(subsystem, "consumed")
        if outcome.status == "applied":
            self.metrics.inc(subsystem, "applied")
        elif outcome.status == "duplicate":
            self.metrics.inc(subsystem, "duplicates")
        else:
            self.metrics.inc(subsystem, "unhandled")
