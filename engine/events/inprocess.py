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
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

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
# The counters an outcome adds to, by its status (any other: consumed, unhandled).
_COUNTERS = {"failed": ("failed",), "applied": ("consumed", "applied"), "duplicate": ("consumed", "duplicates")}


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
        # The database's count of committed outbox writes (store.OutboxWrites) when a drain
        # last found nothing due; None: not known to be quiet.
        self._quiet_at: int | None = None
        # A row this bus applied was left for a later retry: the outbox is not quiet.
        self._retrying = False

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
        self._quiet_at = None  # known quiet again only when this drain ends finding nothing
        total = 0
        for _ in range(max_rounds):
            # Read before the query: a write committed after this is counted after it.
            writes = self.db.outbox_writes.committed
            n = self.dispatch_once()
            if n == 0:
                self._quiet_at = None if self._still_retrying() else writes
                break
            total += n
        return total

    def drain_written(self) -> int:
        """`drain`, unless it would find nothing: no transaction of this process wrote outbox
        rows since the last drain found none due, and no row is waiting for a retry. A test
        clock drains after every job of each stop (hundreds of stops a simulated year) and
        most of those drains found nothing, a transaction each. Rows another process wrote
        are not seen here: where they matter (the start of a clock advance), call `drain`."""
        if self._quiet_at is not None and self._quiet_at == self.db.outbox_writes.committed:
            return 0
        return self.drain()

    def _still_retrying(self) -> bool:
        """After an empty drain: whether a row this bus left for a retry is still pending."""
        if self._retrying:
            with self.db.read_session() as session:
                pending = select(OutboxEvent.seq).where(OutboxEvent.published_at.is_(None), OutboxEvent.dead_at.is_(None))
                self._retrying = session.scalar(pending.limit(1)) is not None
        return self._retrying

    def dispatch_once(self, limit: int | None = None) -> int:
        """Take one batch of due rows and apply it; returns how many rows were taken."""
        wall = _wall_now()
        with self.db.session() as session:
            rows = self._due(session, limit or self.config.batch_size, wall)
            if not rows:
                return 0
            envelopes = self._envelopes(rows, wall)
            by_seq = {row.seq: row for row in rows}
            failures = self._apply(session, envelopes, by_seq)
            for seq, env in envelopes.items():
                if not self.registry.subscribers(env.type):
                    self.metrics.inc(UNROUTED, "unhandled")
                self._settle(by_seq[seq], failures.get(seq, []), wall)
            return len(rows)

    def _due(self, session: Session, limit: int, wall: datetime) -> list[OutboxEvent]:
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
        return list(session.scalars(query))

    def _envelopes(self, rows: Sequence[OutboxEvent], wall: datetime) -> dict[int, Envelope]:
        """The rows' envelopes by seq; a row that is not a valid envelope is dead at once."""
        envelopes: dict[int, Envelope] = {}
        for row in rows:
            try:
                envelopes[row.seq] = envelope_from_dict(row.envelope())
            except PoisonMessage as exc:
                row.dead_at = wall
                row.last_error = f"invalid envelope: {exc}"
                self.metrics.inc(UNROUTED, "dead_lettered")
        return envelopes

    def _apply(
        self, session: Session, envelopes: Mapping[int, Envelope], by_seq: Mapping[int, OutboxEvent]
    ) -> dict[int, list[tuple[str, str]]]:
        """Each subscriber applies its envelopes as one batch; returns the failures per seq
        as (subsystem, error)."""
        failures: dict[int, list[tuple[str, str]]] = {}
        now = self.clock.now()
        for subsystem in self.registry.subsystems():
            batch = [(seq, env) for seq, env in envelopes.items() if self.registry.handlers_for(subsystem, env.type)]
            self.metrics.inc(subsystem, "published", sum(by_seq[seq].attempts == 0 for seq, _ in batch))
            outcomes = apply_batch(session, subsystem, [e for _, e in batch], self.registry, now) if batch else []
            for (seq, _), outcome in zip(batch, outcomes, strict=True):
                self._count(subsystem, outcome)
                if outcome.status == "failed":
                    failures.setdefault(seq, []).append((subsystem, str(outcome.error)))
        return failures

    def _settle(self, row: OutboxEvent, failures: Sequence[tuple[str, str]], wall: datetime) -> None:
        """Published when every subscriber applied it; else retried later, or dead-lettered
        after `max_attempts`."""
        if not failures:
            row.published_at = wall
            row.next_attempt_at = None
            return
        row.attempts += 1
        row.last_error = "; ".join(f"{subsystem}: {error}" for subsystem, error in failures)
        if row.attempts >= self.config.max_attempts:
            row.dead_at = wall
            log.error("event %s dead-lettered after %d attempts: %s", row.id, row.attempts, row.last_error)
            counter = "dead_lettered"
        else:
            row.next_attempt_at = wall + timedelta(milliseconds=self.config.retry_delay_ms(row.attempts))
            self._retrying = True
            counter = "retried"
        for subsystem, _ in failures:
            self.metrics.inc(subsystem, counter)

    def _count(self, subsystem: str, outcome: Outcome) -> None:
        for counter in _COUNTERS.get(outcome.status, ("consumed", "unhandled")):
            self.metrics.inc(subsystem, counter)
