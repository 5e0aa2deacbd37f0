"""Bank lines as an operator lists them (HTTP, CLI, console), with suggestions and decisions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.money import quantum
from engine.payments.bank.suggest import suggestions
from engine.payments.models import (
    BankLine,
    ReconciliationDecision,
)
from engine.payments.service import PaymentNotFound


def line_to_dict(row: BankLine) -> dict[str, Any]:
    q = quantum(row.currency)
    return {
        "id": row.id, "import_id": row.import_id, "account": row.account, "identity": row.identity,
        "position": row.position, "kind": row.kind, "amount": str(row.amount.quantize(q)),
        "currency": row.currency, "booked_on": row.booked_on.date().isoformat() if row.booked_on else None,
        "reference": row.reference, "reference_kind": row.ref_kind, "text": row.text, "debtor": row.debtor,
        "details": row.details, "status": row.status, "outcome": row.outcome, "detail": row.detail,
        "payment_ids": list(row.payment_ids),
    }


def list_lines(session: Session, *, status: str | None = "open", limit: int = 100,
               suggest: bool = True) -> list[dict[str, Any]]:
    """Bank lines (by default the open ones, oldest first), each with up to five suggested
    invoices: same amount, due close to the booking date, a similar reference."""
    stmt = select(BankLine).order_by(BankLine.booked_on, BankLine.created_at, BankLine.id).limit(limit)
    if status:
        stmt = stmt.where(BankLine.status == status)
    rows = list(session.scalars(stmt))
    out = [line_to_dict(r) for r in rows]
    if suggest:
        found = suggestions(session, [r for r in rows if r.status == "open" and r.kind == "credit"])
        for item in out:
            item["suggestions"] = found.get(item["id"], [])
    return out


def get_line(session: Session, line_id: str) -> dict[str, Any]:
    row = session.get(BankLine, line_id)
    if row is None:
        raise PaymentNotFound(f"no bank line {line_id!r}", "line_id")
    out = line_to_dict(row)
    out["suggestions"] = suggestions(session, [row]).get(row.id, []) if row.status == "open" else []
    out["decisions"] = [decision_to_dict(d) for d in session.scalars(
        select(ReconciliationDecision).where(ReconciliationDecision.line_id == line_id)
        .order_by(ReconciliationDecision.decided_at))]
    return out


def decision_to_dict(d: ReconciliationDecision) -> dict[str, Any]:
    return {"id": d.id, "line_id": d.line_id, "action": d.action, "allocations": d.allocations,
            "actor": d.actor, "reason": d.reason, "decided_at": d.decided_at.isoformat()}
