"""From the outbox to the delivery table: the `webhooks` consumer writes one pending delivery
per matching enabled endpoint, in the transaction that records the event as processed. A
crash before that commit leaves the event to be dispatched again; after it, the delivery
rows are durable. Either way nothing is lost and nothing is doubled."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.events import Envelope
from engine.store import new_event_id
from engine.webhooks.models import EventDelivery, EventEndpoint
from engine.webhooks.patterns import matches

CONSUMER = "webhooks"
_CACHE = "webhooks.endpoints"


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
    """The consumer's handler: a pending delivery for every endpoint the event matches."""
    targets = [eid for eid, patterns in _endpoints(session) if matches(patterns, envelope.type)]
    if not targets:
        return
    body = payload(envelope)
    rows: list[dict[str, Any]] = [
        {"id": new_event_id("wd"), "endpoint_id": eid, "event_id": envelope.id, "event_type": envelope.type,
         "customer_id": envelope.customer_id or "", "payload": body, "status": "pending", "attempts": 0,
         "created_at": envelope.time}
        for eid in targets
    ]
    session.add_all(EventDelivery(**r) for r in rows)


def forget_endpoints(session: Session) -> None:
    """Drop the transaction's cached endpoints (one was added in this transaction)."""
    session.info.pop(_CACHE, None)
