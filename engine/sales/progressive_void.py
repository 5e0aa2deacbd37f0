"""Voiding a progressive invoice (docs/progressive-billing.md, *Voiding a progressive invoice*):
the period ledger gets a reversing row of part `interim`, reason `void`, for each row the
invoice wrote, every figure negated as billed. The ledger stays append-only, and what the
period's progressive invoices billed (the interim part's total) no longer holds it: the close
does not deduct it, the next progressive invoice is priced as if it had never been issued, and
its usage is billed again there or at the close."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.pricing.document import Billed, LineTotals
from engine.sales.ledger import INTERIM, write
from engine.sales.models import PeriodLedger

VOID = "void"  # the reason of a reversing row


def negated(billed: Billed) -> Billed:
    return Billed(-billed.gross, -billed.net, {k: -v for k, v in billed.amount_off.items()},
                  {pid: LineTotals(-t.quantity, -t.amount, -t.discount, -t.tax) for pid, t in billed.lines.items()})


def reverse_interim(session: Session, invoice_id: str, now: datetime) -> int:
    """Reverse what a voided progressive invoice wrote to its period's ledger; the rows written
    (0 when it wrote none, or was reversed already: a void happens once, but never twice here)."""
    rows = list(session.scalars(select(PeriodLedger).where(
        PeriodLedger.document_id == invoice_id, PeriodLedger.part == INTERIM).order_by(PeriodLedger.id)))
    if any(r.reason == VOID for r in rows):
        return 0
    out = [_reversal(r, now) for r in rows]
    if out:
        write(session, out)
    return len(out)


def _reversal(r: PeriodLedger, now: datetime) -> dict[str, Any]:
    return {
        "subscription_id": r.subscription_id, "period_start": r.period_start, "period_end": r.period_end,
        "part": INTERIM, "reason": VOID, "credit": r.credit, "document_id": r.document_id, "cycle": r.cycle,
        "plan_id": r.plan_id, "version_id": r.version_id, "quantity": r.quantity, "charge_from": r.charge_from,
        "charge_until": r.charge_until, "billed": negated(Billed.from_dict(r.billed)).as_dict(),
        "discounts": list(r.discounts), "created_at": now,
    }


def voided_documents(rows: list[PeriodLedger]) -> set[str]:
    """The documents of a period's ledger rows that a void reversed."""
    return {r.document_id for r in rows if r.part == INTERIM and r.reason == VOID}
