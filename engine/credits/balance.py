"""credits.balance_low and credits.exhausted: the wallet's available balance fell below the
customer's low-balance level in that unit (their automatic top-up's threshold; else, in a
currency, their budget's `low_balance`, in a custom unit their own level set over HTTP; else
their catalog's `credits.low_balance`, in the catalog wallet's unit: a token wallet's in tokens), or reached zero. Once per episode: an episode is what follows the customer's
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
from engine.credits.models import Budget, Entry, Grant, Level, TopUp
from engine.credits.wallet import available_total
from engine.store import add_event

ZERO = Decimal(0)


def low_level(session: Session, customer_id: str, unit: str, catalog_level: Decimal | None = None) -> Decimal | None:
    """The customer's low-balance level in `unit` (module docstring); `catalog_level`: their
    catalog's `credits.low_balance` when it is in this unit, which sales knows."""
    return low_levels(session, [customer_id], unit, {customer_id: catalog_level})[customer_id]


def low_levels(session: Session, customer_ids: Sequence[str], unit: str,
               catalog_levels: Mapping[str, Decimal | None] | None = None) -> dict[str, Decimal | None]:
    """`low_level` for many customers: two queries for them all (the top-ups; the budgets for
    money, the customers' own levels for a custom unit)."""
    return {cid: level for cid, (level, _source) in level_sources(session, customer_ids, unit, catalog_levels).items()}


def level_sources(session: Session, customer_ids: Sequence[str], unit: str,
                  catalog_levels: Mapping[str, Decimal | None] | None = None
                  ) -> dict[str, tuple[Decimal | None, str | None]]:
    """Each customer's level in `unit` and where it comes from (`top_up`, `customer` for a
    custom unit's own level, `budget` for money, `catalog`; None: no level)."""
    ids = list(customer_ids)
    tops = {t.customer_id: t for t in session.scalars(select(TopUp).where(TopUp.customer_id.in_(ids)))}
    if is_custom(unit):  # a budget is money: the customer's own level in the unit instead
        own = {r.customer_id: r.low_balance for r in session.scalars(
            select(Level).where(Level.customer_id.in_(ids), Level.unit == unit))}
    else:
        own = {b.customer_id: b.low_balance for b in session.scalars(select(Budget).where(Budget.customer_id.in_(ids)))
               if b.low_balance is not None}
    levels = catalog_levels or {}
    return {cid: _level(tops.get(cid), own.get(cid), levels.get(cid), "customer" if is_custom(unit) else "budget")
            for cid in ids}


def _level(top: TopUp | None, own: Decimal | None, catalog_level: Decimal | None,
           own_source: str) -> tuple[Decimal | None, str | None]:
    """The enabled top-up's threshold, else the customer's own level (a token wallet's, or the
    budget's `low_balance` for money), else the catalog's."""
    if top is not None and top.enabled:
        return top.threshold, "top_up"
    if own is not None:
        return own, own_source
    return catalog_level, None if catalog_level is None else "catalog"


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
