"""What a notification said: its rendered content as recorded (a retry resends exactly it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.messaging.models import Notification


def notification_content(session: Session, notification_id: str) -> dict[str, Any] | None:
    """The rendered message (subject, html, text, title, body, ...) or None when not rendered."""
    return session.scalar(select(Notification.content).where(Notification.id == notification_id))
