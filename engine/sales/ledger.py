"""The period ledger: what each document billed of each service period of a subscription.

Later documents of a period are priced against it (engine.pricing.document): the minimum
commitment against what the period was charged, amounts off against what they already took,
a credit for unused time with the discounts of the charge it gives back, late usage against
what its close billed. One row per priced piece, written with the document.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, insert, select, tuple_
from sqlalchemy.orm import Session

from engine.pricing import Discount
from engine.pricing.document import NOTHING, Billed, Document, Piece, total_of
from engine.sales.models import PeriodLedger

LEDGER = "sales_deferred_ledger"  # batch mode: rows kept in session.info, written together
# The part of a period's ledger that progressive billing writes: each interim invoice's usage so
# far (reason `progressive`) and, on the period's close, their deduction (reason `deduction`).
INTERIM = "interim"


def discount_to_dict(d: Discount) -> dict[str, Any]:
    return {
        "percent": str(d.percent) if d.percent is not None else None,
        "amount": str(d.amount) if d.amount is not None else None,
        "prices": list(d.prices),
        "periods": d.periods,
        "reason": d.reason,
        "source": d.source,
    }


def discount_from_dict(data: dict[str, Any]) -> Discount:
    return Discount(
        percent=Decimal(data["percent"]) if data.get("percent") is not None else None,
        amount=Decimal(data["amount"]) if data.get("amount") is not None else None,
        prices=tuple(data.get("prices") or ()),
        periods=data.get("periods"),
        reason=str(data.get("reason") or ""),
        source=str(data.get("source") or ""),
    )


@dataclass
class PeriodHistory:
    """The ledger rows of one service period."""

    rows: list[PeriodLedger] = field(default_factory=list)

    def total(self, part: str | None = None) -> Billed:
        """What the period's documents billed (of one part). Without a part: the advance and
        arrears parts, not the interim part (progressive invoices and the close's deduction of
        them), which nets to nothing once the period closed and is priced only against itself."""
        return total_of(Billed.from_dict(r.billed) for r in self.rows
                        if (r.part == part if part is not None else r.part != INTERIM))

    def last(self, part: str, *, plan_id: str | None = None, charged: bool = True) -> PeriodLedger | None:
        """The latest row of a part (of a plan; a charge, not a credit)."""
        for r in reversed(self.rows):
            if r.part == part and (plan_id is None or r.plan_id == plan_id) and (not charged or not r.credit):
                return r
        return None

    def discounts(self, part: str, plan_id: str) -> tuple[Discount, ...] | None:
        row = self.last(part, plan_id=plan_id)
        return None if row is None else tuple(discount_from_dict(d) for d in row.discounts)

    def held(self) -> list[PeriodLedger]:
        """The charges of the in-advance part, in order: one per plan and quantity the period
        was held at (its opening, then each change), each from its `charge_from`."""
        return [r for r in self.rows if r.part == "advance" and not r.credit]

    @property
    def changes(self) -> int:
        """The changes and cancellations within the period: the documents that cut it."""
        return len({r.document_id for r in self.rows if r.reason in ("change", "cancel")})


def history(session: Session, subscription_id: str, period_start: date) -> PeriodHistory:
    rows = session.scalars(
        select(PeriodLedger)
        .where(PeriodLedger.subscription_id == subscription_id, PeriodLedger.period_start == period_start)
        .order_by(PeriodLedger.id)
    )
    return PeriodHistory(list(rows))


def histories(session: Session, keys: Sequence[tuple[str, date]]) -> dict[tuple[str, date], PeriodHistory]:
    """The history of many (subscription, period start) at once (the billing run's batch)."""
    out: dict[tuple[str, date], PeriodHistory] = defaultdict(PeriodHistory)
    wanted = sorted(set(keys))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        stmt = (
            select(PeriodLedger)
            .where(tuple_(PeriodLedger.subscription_id, PeriodLedger.period_start).in_(chunk))
            .order_by(PeriodLedger.id)
        )
        for row in session.scalars(stmt):
            out[(row.subscription_id, row.period_start)].rows.append(row)
    return out


def billed_periods(session: Session, subscription_id: str, containing: Iterable[datetime]) -> list[PeriodHistory]:
    """The closed periods (those with an arrears part) that hold any of these times (up to
    where a period was cut short: later times belong to the next period)."""
    rows = list(
        session.scalars(
            select(PeriodLedger)
            .where(PeriodLedger.subscription_id == subscription_id)
            .order_by(PeriodLedger.id)
        )
    )
    by_start: dict[date, PeriodHistory] = defaultdict(PeriodHistory)
    for r in rows:
        by_start[r.period_start].rows.append(r)
    days = {t.date() for t in containing}
    hit = []
    for start in sorted(by_start):
        h = by_start[start]
        closed = h.last("arrears", charged=False)
        if closed is None:
            continue
        end = closed.charge_until or closed.period_end
        if any(closed.period_start <= d < end for d in days):
            hit.append(h)
    return hit


def record(
    session: Session,
    *,
    subscription_id: str,
    document_id: str,
    doc: Document,
    reasons: Sequence[str],
    cycles: Sequence[int],
    version_ids: Sequence[int],
    now: datetime,
) -> None:
    """One row per piece of `doc` (in order: `reasons`, `cycles`, `version_ids` per piece)."""
    rows = []
    for (piece, billed), reason, cycle, version_id in zip(doc.billed(), reasons, cycles, version_ids, strict=True):
        rows.append(_row(subscription_id, document_id, piece, billed, reason, cycle, version_id, now))
    pending = session.info.get(LEDGER)
    if pending is not None:
        pending.extend(rows)
    elif rows:
        write(session, rows)


def write(session: Session, rows: list[dict[str, Any]]) -> None:
    """Ledger rows as one plain INSERT (no ORM objects: a billing run writes thousands)."""
    session.execute(insert(cast(Table, PeriodLedger.__table__)), rows)


def _row(
    subscription_id: str,
    document_id: str,
    piece: Piece,
    billed: Billed,
    reason: str,
    cycle: int,
    version_id: int,
    now: datetime,
) -> dict[str, Any]:
    part = "arrears" if "in_arrears" in piece.timings and "in_advance" not in piece.timings else "advance"
    if piece.interim or piece.deducts is not None:
        part = INTERIM
    return {
        "subscription_id": subscription_id,
        "period_start": piece.period.start,
        "period_end": piece.period.end,
        "part": part,
        "reason": reason,
        "credit": piece.credit,
        "document_id": document_id,
        "cycle": cycle,
        "plan_id": piece.plan.id,
        "version_id": version_id,
        "quantity": piece.quantity,
        "charge_from": piece.charge_from,
        "charge_until": piece.charge_until,
        "billed": billed.as_dict(lines=part != "advance"),
        "discounts": [discount_to_dict(d) for d in piece.discounts],
        "created_at": now,
    }


def flush_deferred(session: Session) -> None:
    rows = session.info.pop(LEDGER, None) or []
    if rows:
        write(session, rows)


__all__ = [
    "INTERIM",
    "LEDGER",
    "NOTHING",
    "PeriodHistory",
    "billed_periods",
    "discount_from_dict",
    "discount_to_dict",
    "flush_deferred",
    "histories",
    "history",
    "record",
    "write",
]
