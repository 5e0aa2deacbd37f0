"""Reading a wallet: the balance per unit and grant, and the ledger page by page."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.credits.amounts import amount_text
from engine.credits.errors import CreditsError
from engine.credits.models import Entry, Grant
from engine.credits.wallet import remaining

ZERO = Decimal(0)
MAX_PAGE = 200


def grant_to_dict(g: Grant, left: Decimal) -> dict[str, Any]:
    return {
        "id": g.id, "customer_id": g.customer_id, "unit": g.unit, "source": g.source, "source_ref": g.source_ref,
        "amount": amount_text(g.amount, g.unit), "remaining": amount_text(left, g.unit), "priority": g.priority,
        "effective_at": g.effective_at.isoformat(), "expires_at": g.expires_at.isoformat() if g.expires_at else None,
        "rollover": g.rollover, "status": g.status, "reason": g.reason, "invoice_id": g.invoice_id,
        "created_by": g.created_by, "created_at": g.created_at.isoformat(),
    }


def wallet(session: Session, customer_id: str, now: datetime) -> dict[str, Any]:
    """Balance per unit (all entries), what is usable now, and every grant with what is left."""
    grants = session.scalars(select(Grant).where(Grant.customer_id == customer_id).order_by(Grant.created_at)).all()
    left = remaining(session, [g.id for g in grants])
    balances: dict[str, dict[str, Decimal]] = {}
    for g in grants:
        b = balances.setdefault(g.unit, {"balance": ZERO, "available": ZERO, "pending": ZERO})
        if g.status == "pending":  # what its payment will credit: a credit note's share taken back
            b["pending"] += g.amount + left[g.id]
            continue
        b["balance"] += left[g.id]
        if _usable(g, now):
            b["available"] += left[g.id]
    return {
        "customer_id": customer_id,
        "balances": [{"unit": u, **{k: amount_text(v, u) for k, v in b.items()}} for u, b in sorted(balances.items())],
        "grants": [grant_to_dict(g, ZERO if g.status == "pending" else left[g.id]) for g in grants],
    }


def _usable(g: Grant, now: datetime) -> bool:
    """Active, in effect, and not expired (a grant expiring at `now` is still usable)."""
    return g.status == "active" and g.effective_at <= now and (g.expires_at is None or g.expires_at >= now)


def entry_to_dict(e: Entry, unit: str) -> dict[str, Any]:
    return {"id": e.id, "grant_id": e.grant_id, "kind": e.kind, "amount": amount_text(e.amount, unit), "unit": unit,
            "invoice_id": e.invoice_id, "line": e.line, "note": e.note, "created_at": e.created_at.isoformat()}


def ledger_page(session: Session, customer_id: str, *, after: int = 0, limit: int = 50) -> dict[str, Any]:
    """Entries oldest first; `next_after` is the cursor for the next page (None at the end)."""
    if not 1 <= limit <= MAX_PAGE:
        raise CreditsError("limit", f"between 1 and {MAX_PAGE}")
    if after < 0:
        raise CreditsError("after", "an entry id from a previous page, or 0")
    rows = session.scalars(
        select(Entry).where(Entry.customer_id == customer_id, Entry.id > after).order_by(Entry.id).limit(limit + 1)
    ).all()
    page = rows[:limit]
    stmt = select(Grant.id, Grant.unit).where(Grant.id.in_({e.grant_id for e in page}))
    units = {gid: unit for gid, unit in session.execute(stmt)}
    return {"entries": [entry_to_dict(e, units[e.grant_id]) for e in page],
            "next_after": page[-1].id if len(rows) > limit else None}
