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
from typing import Any

from sqlalchemy import func, literal, select, union_all
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
    """`low_level` for many customers: one query for them all (level_sources)."""
    return {cid: level for cid, (level, _source) in level_sources(session, customer_ids, unit, catalog_levels).items()}


def level_sources(session: Session, customer_ids: Sequence[str], unit: str,
                  catalog_levels: Mapping[str, Decimal | None] | None = None
                  ) -> dict[str, tuple[Decimal | None, str | None]]:
    """Each customer's level in `unit` and where it comes from (`top_up`, `customer` for a
    custom unit's own level, `budget` for money, `catalog`; None: no level). One query for them
    all: a burn asks this for every batch (benchmarks/credits.py counts its statements)."""
    ids = list(customer_ids)
    custom = is_custom(unit)
    tops: dict[str, tuple[bool, Decimal]] = {}
    own: dict[str, Decimal] = {}
    for cid, source, enabled, level in session.execute(_levels_query(ids, unit, custom)):
        if source == "top_up":
            tops[cid] = (bool(enabled), level)
        elif level is not None:
            own[cid] = level
    levels = catalog_levels or {}
    return {cid: _level(tops.get(cid), own.get(cid), levels.get(cid), "customer" if custom else "budget")
            for cid in ids}


def _levels_query(ids: list[str], unit: str, custom: bool) -> Any:
    """The top-ups and the customers' own levels (a budget's `low_balance` for money, a custom
    unit's level otherwise) as (customer, source, enabled, level) rows."""
    tops = select(TopUp.customer_id, literal("top_up"), TopUp.enabled, TopUp.threshold).where(
        TopUp.customer_id.in_(ids))
    mine: Any
    if custom:
        mine = select(Level.customer_id, literal("own"), literal(True), Level.low_balance).where(
            Level.customer_id.in_(ids), Level.unit == unit)
    else:
        mine = select(Budget.customer_id, literal("own"), literal(True), Budget.low_balance).where(
            Budget.customer_id.in_(ids), Budget.low_balance.is_not(None))
    return union_all(tops, mine)


def _level(top: tuple[bool, Decimal] | None, own: Decimal | None, catalog_level: Decimal | None,
           own_source: str) -> tuple[Decimal | None, str | None]:
    """The enabled top-up's threshold, else the customer's own level (a token wallet's, or the
    budget's `low_balance` for money), else the catalog's."""
    if top is not None and top[0]:
        return top[1], "top_up"
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
