"""From the outbox to the delivery table: the `webhooks` consumer writes one pending delivery
per matching enabled endpoint, in the transaction that records the event as processed. A
crash before that commit leaves the event to be dispatched again; after it, the delivery
rows are durable. Either way nothing is lost and nothing is doubled.

The rows of a whole dispatch batch are written in one INSERT just before its transaction
commits, and only for the events whose processed-record is still there (an event whose
savepoint was rolled back is dispatched again later): one statement per batch, not per
event, keeps the cost on the event path small."""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from engine.events import Envelope
from engine.store.outbox import ProcessedEvent
from engine.webhooks.models import EventDelivery, EventEndpoint
from engine.webhooks.patterns import matches

CONSUMER = "webhooks"
_CACHE = "webhooks.endpoints"
_PENDING = "webhooks.pending"


def _endpoints(session: Session) -> list[tuple[str, list[str]]]:
    """The enabled endpoints and their patterns, read once per dispatch transaction (a batch
    of events shares it)."""
    cached: list[tuple[str, list[str]]] | None = session.info.get(_CACHE)
    if cached is None:
        rows = session.execute(select(EventEndpoint.id, EventEndpoint.event_types)
                               .where(EventEndpoint.enabled.is_(True)).order_by(EventEndpoint.created_at))
        cached = [(r[0], list(r[1])) for r in rows]
        session.info[_CACHE] = cached
    return cached


def payload(envelope: Envelope) -> str:
    """The body sent: the FORMATS §3 envelope, compact JSON."""
    return json.dumps(envelope.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)


def fan_out(session: Session, envelope: Envelope) -> None:
    """The consumer's handler: a pending delivery for every endpoint the event matches,
    written when the dispatch transaction commits."""
    targets = [eid for eid, patterns in _endpoints(session) if matches(patterns, envelope.type)]
    if not targets:
        return
    body = payload(envelope)
    _pending(session)[envelope.id] = [
        {"id": new_id(), "endpoint_id": eid, "event_id": envelope.id, "event_type": envelope.type,
         "customer_id": envelope.customer_id or "", "payload": body, "status": "pending", "attempts": 0,
         "created_at": envelope.time}
        for eid in targets
    ]


def new_id() -> str:
    """A delivery's id (its lane order is `seq`, so the id need not sort)."""
    return "wd_" + secrets.token_hex(12)


def _pending(session: Session) -> dict[str, list[dict[str, Any]]]:
    pending: dict[str, list[dict[str, Any]]] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = {}
        event.listen(session, "before_commit", _write)
        event.listen(session, "after_rollback", _forget)
    return pending


def _write(session: Session) -> None:
    pending: dict[str, list[dict[str, Any]]] = session.info.get(_PENDING, {})  # only _pending sets it
    if not pending:
        return
    applied = set(session.scalars(select(ProcessedEvent.event_id).where(
        ProcessedEvent.consumer == CONSUMER, ProcessedEvent.event_id.in_(list(pending)))))
    rows = [row for event_id, rows in pending.items() if event_id in applied for row in rows]
    pending.clear()
    session.info.pop(_CACHE, None)
    if rows:
        session.execute(insert(EventDelivery), rows)


def _forget(session: Session) -> None:
    """The whole transaction rolled back: its events will be dispatched again."""
    pending: dict[str, list[dict[str, Any]]] = session.info.get(_PENDING, {})  # only _pending sets it
    pending.clear()
    session.info.pop(_CACHE, None)
