"""Digests: what was held for a customer's digest goes out as one message per channel.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine.messaging import models as m
from engine.messaging.models import Notification
from engine.messaging.notify import _failed_event
from engine.messaging.preferences import QUIET_HOURS_CHANNELS, get_preferences, quiet_hours_end
from engine.messaging.templates import Rendered, Renderer, TemplateError
from engine.store import new_event_id

# -- digests -------------------------------------------------------------------------------


def flush_digests(session: Session, *, now: datetime, renderer: Renderer | None = None) -> int:
    """Close every digest window that has ended: one waiting message goes out as itself,
    several go out as one `digest` message. Returns how many digest messages were made."""
    rows = session.scalars(select(Notification).where(
        Notification.status == m.DIGEST, Notification.next_attempt_at <= now
    ).order_by(Notification.digest_key, Notification.created_at, Notification.id)).all()
    groups: dict[str, list[Notification]] = defaultdict(list)
    for row in rows:
        groups[row.digest_key or row.id].append(row)
    if not groups:
        return 0
    renderer = renderer or Renderer()  # the caller's (its system's) templates, or its own
    made = 0
    for items in groups.values():
        deliver_at = _deliver_at(session, items, now)
        if len(items) == 1:
            items[0].status, items[0].next_attempt_at, items[0].updated_at = m.PENDING, deliver_at, now
        else:
            _send_as_digest(session, items, deliver_at, now, renderer)
            made += 1
    session.flush()
    return made


def _deliver_at(session: Session, items: Sequence[Notification], now: datetime) -> datetime:
    """Now, or the end of the customer's quiet hours for a channel that keeps them (unless
    one of the messages is urgent)."""
    first = items[0]
    if first.channel not in QUIET_HOURS_CHANNELS or any(i.urgent for i in items):
        return now
    prefs = get_preferences(session, first.customer_id)
    return quiet_hours_end(now, prefs, (first.customer or {}).get("timezone")) or now


def _send_as_digest(session: Session, items: Sequence[Notification], deliver_at: datetime, now: datetime,
                    renderer: Renderer) -> None:
    """One `digest` message listing the items, which are marked digested into it."""
    first = items[0]
    summaries = [{"template": i.template,
                  "summary": Rendered.from_dict(i.content).summary() if i.content else i.template,
                  "time": i.created_at.isoformat()} for i in items]
    digest_row: dict[str, Any] = {
        "id": new_event_id("ntf"), "customer_id": first.customer_id, "template": "digest",
        "channel": first.channel, "category": first.category, "rule_id": "digest",
        "event_id": first.id, "target": first.target, "recipient": first.recipient,
        "locale": first.locale, "urgent": False, "customer": first.customer,
        "attempts": 0, "next_attempt_at": deliver_at, "created_at": now,
        "updated_at": now, "digest_key": None, "error": None, "content": None,
        "status": m.PENDING,
    }
    try:
        rendered = renderer.render("digest", first.channel, {"items": summaries},
                                   first.locale, first.customer or {"id": first.customer_id})
        digest_row["content"] = rendered.to_dict()
    except TemplateError as exc:
        digest_row["status"], digest_row["error"] = m.FAILED, str(exc)
        _failed_event(session, digest_row, now, str(exc))
    session.execute(insert(Notification).values(**digest_row))
    for item in items:
        item.status, item.digest_id, item.updated_at = m.DIGESTED, digest_row["id"], now
