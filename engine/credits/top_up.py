"""Automatic top-up settings, and when a top-up is due.

Never twice: a top-up's key is the number of automatic top-ups the customer had before it
(`auto:3`), so two triggers racing on one low balance (two invoices finalized at once, a
redelivered event) name the same purchase, and the pack's invoice and grant are unique per
key. What a pack bought but not yet paid will bring counts toward the threshold."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.credits.errors import CreditsError
from engine.credits.models import Grant, TopUp
from engine.credits.terms import top_up_due
from engine.credits.wallet import usable

ZERO = Decimal(0)


def set_top_up(session: Session, customer_id: str, *, enabled: bool, threshold: Decimal, pack: str,
               pack_credit: Decimal, now: datetime) -> TopUp:
    if threshold < ZERO:
        raise CreditsError("threshold", "zero or more")
    if threshold >= pack_credit:
        raise CreditsError("threshold", f"must be below the pack's credit ({pack_credit}): "
                                        "one top-up must lift the balance above it")
    row = session.get(TopUp, customer_id)
    if row is None:
        row = TopUp(customer_id=customer_id, enabled=enabled, threshold=threshold, pack=pack, updated_at=now)
        session.add(row)
    else:
        row.enabled, row.threshold, row.pack, row.updated_at = enabled, threshold, pack, now
    return row


def get_top_up(session: Session, customer_id: str) -> TopUp | None:
    return session.get(TopUp, customer_id)


def top_up_to_dict(row: TopUp | None) -> dict[str, object]:
    if row is None:
        return {"enabled": False, "threshold": None, "pack": None}
    return {"enabled": row.enabled, "threshold": str(row.threshold), "pack": row.pack}


def due_top_up(session: Session, customer_id: str, unit: str, now: datetime) -> tuple[str, str] | None:
    """(pack, key) when the customer's balance, with packs bought but not yet paid, is below
    their threshold; None otherwise."""
    row = session.get(TopUp, customer_id)
    if row is None or not row.enabled:
        return None
    balance = sum((a.remaining for a in usable(session, customer_id, unit, now)), ZERO)
    pending = session.scalars(select(Grant.amount).where(Grant.customer_id == customer_id,
                                                         Grant.status == "pending", Grant.unit == unit))
    if not top_up_due(balance, sum(pending, ZERO), row.threshold):
        return None
    done = session.scalar(select(func.count()).select_from(Grant).where(
        Grant.customer_id == customer_id, Grant.source == "top_up")) or 0
    return row.pack, f"auto:{done + 1}"

