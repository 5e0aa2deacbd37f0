"""The delivery log of an endpoint and replays: one delivery, or every delivery of a time
range, sent again as new deliveries at the end of their lanes (same body, same `webhook-id`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.webhooks.endpoints import NotFound, get_endpoint
from engine.webhooks.fanout import new_id
from engine.webhooks.models import EventDelivery

STATUSES = ("pending", "delivered", "dead")


def list_deliveries(session: Session, endpoint_id: str, *, status: str | None = None, limit: int = 100
                    ) -> list[dict[str, Any]]:
    """The endpoint's deliveries, newest first."""
    get_endpoint(session, endpoint_id)
    query = select(EventDelivery).where(EventDelivery.endpoint_id == endpoint_id)
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        query = query.where(EventDelivery.status == status)
    rows = session.scalars(query.order_by(EventDelivery.seq.desc()).limit(limit))
    return [r.log() for r in rows]


def get_delivery(session: Session, delivery_id: str) -> dict[str, Any]:
    return _row(session, delivery_id).log()


def _row(session: Session, delivery_id: str) -> EventDelivery:
    row = session.scalar(select(EventDelivery).where(EventDelivery.id == delivery_id))
    if row is None:
        raise NotFound("delivery_id", delivery_id, "webhook delivery")
    return row


def _again(row: EventDelivery, now: datetime) -> EventDelivery:
    return EventDelivery(id=new_id(), endpoint_id=row.endpoint_id, event_id=row.event_id,
                         event_type=row.event_type, customer_id=row.customer_id, payload=row.payload,
                         status="pending", attempts=0, replay_of=row.replay_of or row.id, created_at=now)


def replay_delivery(session: Session, delivery_id: str, *, now: datetime) -> dict[str, Any]:
    """Send one delivery again (whatever its status); returns the new delivery."""
    row = _again(_row(session, delivery_id), now)
    session.add(row)
    session.flush()
    return row.log()


def replay_range(session: Session, endpoint_id: str, start: datetime, end: datetime, *, now: datetime
                 ) -> list[dict[str, Any]]:
    """Send again every delivery of the endpoint whose event happened in [start, end), in their
    order (replays themselves are not replayed twice). An empty range replays nothing."""
    get_endpoint(session, endpoint_id)
    rows = list(session.scalars(select(EventDelivery).where(
        EventDelivery.endpoint_id == endpoint_id, EventDelivery.replay_of.is_(None),
        EventDelivery.created_at >= start, EventDelivery.created_at < end).order_by(EventDelivery.seq)))
    fresh = [_again(r, now) for r in rows]
    session.add_all(fresh)
    session.flush()
    return [r.log() for r in fresh]
