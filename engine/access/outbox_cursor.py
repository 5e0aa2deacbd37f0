"""Reading the outbox in `seq` order without losing a row that commits late.

On PostgreSQL `seq` is taken at INSERT, not at COMMIT: a transaction holding seq 100 can
commit after the one holding 101. A reader that moved past 101 would never see 100. The
cursor keeps the numbers it jumped over as gaps and asks for them again on later polls,
for `gap_seconds` (past that, a gap is a rolled-back transaction or a sequence skip, and the
access view's TTL covers the rest). On SQLite rows commit in `seq` order and gaps are rare.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, case, null, or_, select
from sqlalchemy.orm import Session

from engine.store import OutboxEvent

MAX_GAPS = 10_000


class OutboxCursor:
    def __init__(
        self, last: int, *, gap_seconds: float = 60.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.last = last
        self.gap_seconds = gap_seconds
        self._monotonic = monotonic
        self._gaps: dict[int, float] = {}  # seq -> when first missed

    def poll(self, session: Session, wanted: ColumnElement[bool], limit: int = 10_000) -> Sequence[Row[Any]]:
        """The rows matching `wanted` not returned before, in `seq` order: (seq, id, type,
        customer_id, properties). Every row moves the cursor, wanted or not, so a busy
        outbox of other events is not read again on each poll."""
        now = self._monotonic()
        for seq, since in list(self._gaps.items()):
            if now - since > self.gap_seconds:
                del self._gaps[seq]
        after = OutboxEvent.seq > self.last
        where = or_(after, OutboxEvent.seq.in_(list(self._gaps))) if self._gaps else after
        rows = session.execute(
            select(
                OutboxEvent.seq,
                OutboxEvent.id,
                OutboxEvent.type,
                OutboxEvent.customer_id,
                case((wanted, OutboxEvent.properties), else_=null()).label("properties"),
                case((wanted, True), else_=False).label("wanted"),
            )
            .where(where)
            .order_by(OutboxEvent.seq)
            .limit(limit)
        ).all()
        seen = {row.seq for row in rows}
        for seq in seen:
            self._gaps.pop(seq, None)
        top = max([self.last, *seen])
        for seq in range(self.last + 1, top):
            if seq not in seen and len(self._gaps) < MAX_GAPS:
                self._gaps[seq] = now
        self.last = top
        return [row for row in rows if row.wanted]

    @property
    def gaps(self) -> list[int]:
        return sorted(self._gaps)
