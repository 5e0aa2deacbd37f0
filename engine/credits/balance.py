"""credits.balance_low and credits.exhausted: the wallet's available balance fell below the
customer's low-balance level (their automatic top-up's threshold, else their budget's
`low_balance`), or reached zero. Once per episode: an episode is what follows the customer's
latest grant in that unit, so a redelivered trigger or a second invoice says nothing more, and
a new grant (a pack paid, a top-up) starts the next one. At zero only credits.exhausted is
published, not both."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.credits.amounts import amount_text
from engine.credits.budgets import raise_once
from engine.credits.models import Budget, Entry, Grant, TopUp
from engine.credits.wallet import available_total
from engine.store import add_event

ZERO = Decimal(0)


def low_level(session: Session, customer_id: str) -> Decimal | None:
    top_up = session.get(TopUp, customer_id)
    if top_up is not None and top_up.enabled:
        return top_up.threshold
    budget = session.get(Budget, customer_id)
    return budget.low_balance if budget is not None else None


def low_levels(session: Session, customer_ids: Sequence[str]) -> dict[str, Decimal | None]:
    """`low_level` for many customers: two queries for them all."""
    ids = list(customer_ids)
    tops = {t.customer_id: t for t in session.scalars(select(TopUp).where(TopUp.customer_id.in_(ids)))}
    budgets = {b.customer_id: b for b in session.scalars(select(Budget).where(Budget.customer_id.in_(ids)))}
    return {cid: _level(tops.get(cid), budgets.get(cid)) for cid in ids}


def _level(top: TopUp | None, budget: Budget | None) -> Decimal | None:
    if top is not None and top.enabled:
        return top.threshold
    return budget.low_balance if budget is not None else None


def announce_balance(session: Session, customer_id: str, unit: str, now: datetime,
                     known: tuple[Decimal, Decimal | None] | None = None) -> str | None:
    """Publish the balance event due now, once per episode; returns its type (None: none).
    `known`: the available balance and the low level, when the caller has them (a burn)."""
    available, level = known if known is not None else (
        available_total(session, customer_id, unit, now), low_level(session, customer_id))
    if available <= ZERO:
        kind, etype = "exhausted", "credits.exhausted"
    elif level is not None and available < level:
        kind, etype = "balance_low", "credits.balance_low"
    else:
        return None
    episode = session.scalar(select(func.max(Entry.id)).join(Grant, Grant.id == Entry.grant_id).where(
        Entry.customer_id == customer_id, Entry.kind == "grant", Grant.unit == unit))
    if episode is None:
        return None  # never credited: nothing ran out
    if not raise_once(session, customer_id, kind, f"{unit}:{episode}", now):
        return None
    props = {"unit": unit, "amount": amount_text(max(available, ZERO), unit),
             "threshold": None if level is None else amount_text(level, unit)}
    add_event(session, etype, customer_id, props, time=now)
    return etype
