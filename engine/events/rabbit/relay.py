"""The outbox relay: committed outbox rows published in `seq` order and marked published only once
the broker confirmed them. Moved from engine/events/rabbit.py."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select, text, update
from sqlalchemy.orm import Session

from engine.events.apply import describe_error
from engine.events.config import BusConfig
from engine.events.metrics import EventMetrics
from engine.events.metrics import metrics as default_metrics
from engine.events.rabbit.connection import redact_url, sleep_unless_stopped
from engine.events.rabbit.publisher import RabbitPublisher, persistent_message
from engine.events.registry import HandlerRegistry
from engine.events.registry import registry as default_registry
from engine.store.database import Database
from engine.store.outbox import OutboxEvent

log = logging.getLogger(__name__)


UNROUTED = "unrouted"


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
                    await sleep_unless_stopped(stop, self.config.poll_interval)
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
                await sleep_unless_stopped(stop, delay)
                delay = min(delay * 2, self.config.reconnect_delay_max)
        await self.publisher.close()


@dataclass
class _RelayBatch:
    scope: AbstractContextManager[Session]
    session: Session
    rows: list[Any]
    confirms: asyncio.Future[list[BaseException | None]]
