"""The in-app feed: a customer's messages, what is unread, marking them read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.messaging.models import InAppMessage

# -- the in-app feed -----------------------------------------------------------------------


def list_feed(session: Session, customer_id: str, *, unread_only: bool = False,
              limit: int = 50, before: datetime | None = None) -> list[dict[str, Any]]:
    """A customer's in-app notifications, newest first. `before` pages back in time."""
    stmt = select(InAppMessage).where(InAppMessage.customer_id == customer_id)
    if unread_only:
        stmt = stmt.where(InAppMessage.read_at.is_(None))
    if before is not None:
        stmt = stmt.where(InAppMessage.created_at < before)
    stmt = stmt.order_by(InAppMessage.created_at.desc(), InAppMessage.id.desc()).limit(limit)
    return [{"id": r.id, "template": r.template, "category": r.category, "title": r.title,
             "body": r.body, "action_url": r.action_url, "created_at": r.created_at,
             "read": r.read_at is not None, "read_at": r.read_at}
            for r in session.scalars(stmt)]


def unread_count(session: Session, customer_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(InAppMessage).where(
        InAppMessage.customer_id == customer_id, InAppMessage.read_at.is_(None))) or 0)


def mark_read(session: Session, customer_id: str, ids: Sequence[str] | None = None, *,
              now: datetime) -> int:
    """Mark the given feed entries (all when `ids` is None) read. Only the customer's own
    entries change; returns how many did."""
    stmt = update(InAppMessage).where(InAppMessage.customer_id == customer_id,
                                      InAppMessage.read_at.is_(None))
    if ids is not None:
        stmt = stmt.where(InAppMessage.id.in_(list(ids)))
    return int(session.execute(stmt.values(read_at=now)).rowcount)  # type: ignore[attr-defined]
