"""Notifications for the admin: listing them, the dead letters, and sending one again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.messaging import models as m
from engine.messaging.models import Notification

# -- dead letters and queries --------------------------------------------------------------


def _notification_dict(row: Notification) -> dict[str, Any]:
    return {"id": row.id, "customer_id": row.customer_id, "template": row.template,
            "channel": row.channel, "category": row.category, "rule_id": row.rule_id or None,
            "event_id": row.event_id, "target": row.target or None, "recipient": row.recipient,
            "status": row.status, "attempts": row.attempts, "error": row.error,
            "next_attempt_at": row.next_attempt_at, "created_at": row.created_at,
            "sent_at": row.sent_at, "digest_id": row.digest_id}


def list_notifications(session: Session, *, customer_id: str | None = None,
                       status: str | None = None, channel: str | None = None,
                       limit: int = 100) -> list[dict[str, Any]]:
    """Recorded notifications, newest first (for the console and the API)."""
    stmt = select(Notification).order_by(Notification.created_at.desc(),
                                         Notification.id.desc()).limit(limit)
    if customer_id is not None:
        stmt = stmt.where(Notification.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(Notification.status == status)
    if channel is not None:
        stmt = stmt.where(Notification.channel == channel)
    return [_notification_dict(r) for r in session.scalars(stmt)]


def list_dead_letters(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    return list_notifications(session, status=m.DEAD, limit=limit)


def retry_dead_letter(session: Session, notification_id: str, *, now: datetime) -> bool:
    """Put a dead-lettered notification back in the queue with fresh attempts."""
    result = session.execute(update(Notification).where(
        Notification.id == notification_id, Notification.status == m.DEAD).values(
        status=m.PENDING, attempts=0, next_attempt_at=now, updated_at=now))
    return bool(result.rowcount)  # type: ignore[attr-defined]
