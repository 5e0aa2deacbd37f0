"""What a bulk call collects in `session.info` to write in one INSERT each: the invoice lines and
the events (`emit` writes an event at once outside one). Moved from engine/sales/invoicing.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.store import add_event

LINES = "sales_deferred_lines"


EVENTS = "sales_deferred_events"


def emit(session: Session, type: str, customer_id: str | None, properties: dict[str, Any], *, time: datetime) -> None:
    """`add_event`; inside a bulk call (`session.info[EVENTS]` a list) the event is kept to
    be written with the others in one INSERT, in the same order (no ORM object per event)."""
    pending = session.info.get(EVENTS)
    if pending is None:
        add_event(session, type, customer_id, properties, time=time)
    else:
        pending.append((type, customer_id, properties, time))
