"""credits.balance_low and credits.exhausted: the wallet's available balance fell below the
customer's low-balance level in that unit (their automatic top-up's threshold; else, in a
currency, their budget's `low_balance`; else their catalog's `credits.low_balance`, in the
catalog wallet's unit: a token wallet's in tokens), or reached zero. Once per episode: an episode is what follows the customer's
latest grant in that unit, so a redelivered trigger or a second invoice says nothing more, and
a new grant (a pack paid, a top-up) starts the next one. At zero only credits.exhausted is
published, not both."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.credits.amounts import amount_text, is_custom
from engine.credits.budgets import raise_once
from engine.credits.models import Budget, Entry, Grant, TopUp
from engine.credits.wallet import available_total
from engine.store import add_event

ZERO = Decimal(0)


def low_level(session: Session, customer_id: str, unit: str, catalog_level: Decimal | None = None) -> Decimal | None:
    """The customer's low-balance level in `unit` (module docstring); `catalog_level`: their
    catalog's `credits.low_balance` when it is in this unit, which sales knows."""
    return low_levels(session, [customer_id], unit, {customer_id: catalog_level})[customer_id]


def low_levels(session: Session, customer_ids: Sequence[str], unit: str,
               catalog_levels: Mapping[str, Decimal | None] | None = None) -> dict[str, Decimal | None]:
    """`low_level` for many customers: two queries for them all (one for a custom unit)."""
    ids = list(customer_ids)
    tops = {t.customer_id: t for t in session.scalars(select(TopUp).where(TopUp.customer_id.in_(ids)))}
    budgets = {} if is_custom(unit) else {  # a budget is money: no query for a custom unit
        b.customer_id: b for b in session.scalars(select(Budget).where(Budget.customer_id.in_(ids)))}
    levels = catalog_levels or {}
    return {cid: _level(tops.get(cid), None if is_custom(unit) else budgets.get(cid), levels.get(cid)) for cid in ids}


def _level(top: TopUp | None, budget: Budget | None, catalog_level: Decimal | None) -> Decimal | None:
    """A budget is money: it sets no level for a custom unit (the caller leaves it out)."""
    if top is not None and top.enabled:
        return top.threshold
    if budget is not None and budget.low_balance is not None:
        return budget.low_balance
    return catalog_level


def announce_balance(session: Session, customer_id: str, unit: str, now: datetime,
                     known: tuple[Decimal, Decimal | None] | None = None, *,
                     catalog_level: Decimal | None = None) -> str | None:
    """Publish the balance event due now, once per episode; returns its type (None: none).
    `known`: the available balance and the low level, when the caller has them (a burn);
    `catalog_level`: the catalog's `credits.low_balance` in this unit (sales.announce_balance)."""
    available, level = known if known is not None else (
        available_total(session, customer_id, unit, now), low_level(session, customer_id, unit, catalog_level))
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
