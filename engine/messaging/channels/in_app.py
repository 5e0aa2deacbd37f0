"""The in-app channel: feed rows written in the transaction that marks the notifications sent.
Moved from engine/messaging/channels.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.messaging.channels.base import Channel, Outgoing, RetryPolicy
from engine.messaging.models import InAppMessage

_INSERT_IN_APP = insert(InAppMessage.__table__)  # type: ignore[arg-type]


class InAppChannel(Channel):
    """Writes the feed row in the same transaction that marks the notification sent."""

    name = "in_app"
    transactional = True

    def __init__(self, retry: RetryPolicy | None = None) -> None:
        self.retry = retry or RetryPolicy(max_attempts=3)

    def send(self, message: Outgoing, session: Session | None = None) -> str | None:
        if session is None:
            raise TypeError("the in-app channel needs the delivery transaction's session")
        self.send_many([message], session)
        return None

    def send_many(self, messages: Sequence[Outgoing], session: Session) -> None:
        """All of a delivery group's feed rows in one statement."""
        if messages:
            session.execute(_INSERT_IN_APP, [self._row(m) for m in messages])

    @staticmethod
    def _row(message: Outgoing) -> dict[str, Any]:
        r = message.rendered
        return {
            "id": message.notification_id,
            "customer_id": message.customer_id,
            "template": message.template,
            "category": message.category,
            "title": (r.title or "")[:500],
            "body": r.body or "",
            "action_url": r.action_url,
            "created_at": message.created_at,
            "read_at": None,
        }

    def close(self) -> None:
        pass
