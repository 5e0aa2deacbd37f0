"""Token wallets drawn by usage (docs/credits.md, Token wallets): a catalog whose credits are in
a custom unit names the metrics that burn it (`credits.burn`, units per unit of the metric's
quantity). Sales counts the usage; the wallet (engine/credits/burn.py) writes what it burns.
What usage asks is `credits.burn_asked` (quantity times rate, exact), the function the what-if
burns with (engine/simulation/prepaid.py), so the two can never price a burn apart.

When: on `usage.recorded`, the bus's sales consumer, just after the ingestion batch commits (as
progressive billing does: no wallet query on the ingestion hot path), for the customers it names
that hold a wallet. The access check does not wait for it: what the customer may still spend is
the usable balance less what their usage asks and was not burned yet, exact at every moment.

What usage asks is read from running totals per (customer, metric) that ingestion keeps
(engine/sales/burn_totals.py): one row per metric, not the customer's history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from engine import credits
from engine.catalog.model import Catalog
from engine.sales.burn_totals import ALL_TIME, Total, holders_with_totals, latest_catalogs
from engine.sales.models import BurnTotal
from engine.sales.queries import usage_in_period
from engine.sales.usage import recorded_customers
from engine.sales.wallet import catalog_level
from engine.store import add_event

ZERO = Decimal(0)


def token_usage(session: Session, customer_id: str, catalog: Catalog, burn: Mapping[str, Decimal]) -> Decimal:
    """What the customer's usage of the burning metrics asks of the wallet, all of it so far
    (exact: the rates are decimals, a custom unit is never rounded): each metric's running
    total (engine/sales/burn_totals.py) when it has counted the history, else the history."""
    totals = _totals(session, customer_id, burn)
    return credits.burn_asked({m: _quantity(session, customer_id, catalog, m, totals) for m in burn}, burn)


def history_usage(session: Session, customer_id: str, catalog: Catalog, metric: str) -> Decimal:
    """Every event of the metric the customer ever sent, whatever its date (as a total counts)."""
    return usage_in_period(session, customer_id, catalog, metric, ALL_TIME)


def _totals(session: Session, customer_id: str, burn: Mapping[str, Decimal]) -> dict[str, BurnTotal]:
    stmt = (select(BurnTotal).where(BurnTotal.customer_id == customer_id, BurnTotal.metric.in_(sorted(burn)))
            .execution_options(populate_existing=True))  # as committed now, not as this session last saw it
    return {row.metric: row for row in session.scalars(stmt)}


def _quantity(session: Session, customer_id: str, catalog: Catalog, metric: str,
              totals: Mapping[str, BurnTotal | Total]) -> Decimal:
    row = totals.get(metric)
    if row is not None and row.counted:
        return row.quantity
    return history_usage(session, customer_id, catalog, metric)


def count_totals(session: Session, customer_id: str, catalog: Catalog, burn: Mapping[str, Decimal]) -> None:
    """Make each burning metric's total count the whole history, once, in the burn's
    transaction. The row is created if missing and locked (PostgreSQL) before the history is
    read: an ingestion that added to it before has committed its events by then (they are in
    the history, which replaces its quantity), one that adds after waits for this commit."""
    totals = _totals(session, customer_id, burn)
    missing = [m for m in sorted(burn) if m not in totals or not totals[m].counted]
    if not missing:
        return
    for metric in missing:
        _create_row(session, customer_id, metric, metric in totals)
    session.flush()
    stmt = (select(BurnTotal).where(BurnTotal.customer_id == customer_id, BurnTotal.metric.in_(missing))
            .order_by(BurnTotal.metric).with_for_update().execution_options(populate_existing=True))
    for row in session.scalars(stmt):
        if not row.counted:  # another burn may have counted it while this one waited
            row.quantity, row.counted = history_usage(session, customer_id, catalog, row.metric), True
    session.flush()


def _create_row(session: Session, customer_id: str, metric: str, exists: bool) -> None:
    if session.get_bind().dialect.name == "postgresql":  # another burn or ingestion may be creating it
        session.execute(pg_insert(BurnTotal).values(customer_id=customer_id, metric=metric, quantity=ZERO,
                                                    counted=False).on_conflict_do_nothing())
    elif not exists:  # SQLite: the write transaction is the only writer
        session.add(BurnTotal(customer_id=customer_id, metric=metric, quantity=ZERO, counted=False))


def tokens_spendable(session: Session, customer_id: str, catalog: Catalog, now: datetime) -> Decimal:
    """The access check's figure for a custom-unit catalog: usable balance less what usage
    asks beyond what it burned (usage the wallet could not pay, or not burned yet)."""
    return tokens_spendable_many(session, {customer_id: catalog}, now)[customer_id]


def tokens_spendable_many(session: Session, catalogs: Mapping[str, Catalog], now: datetime) -> dict[str, Decimal]:
    """`tokens_spendable` for many customers (a reload of a usage batch's customers): their
    running totals in one query, their balances and burns in one query per unit. A total that
    has not counted the history yet (no burn since the wallet opened) reads the history."""
    totals = _totals_of(session, sorted(catalogs))
    out: dict[str, Decimal] = {}
    by_unit: dict[str, list[str]] = {}
    for cid, catalog in catalogs.items():
        wallet = catalog.tokens
        assert wallet is not None
        by_unit.setdefault(wallet.unit, []).append(cid)
    for unit, cids in sorted(by_unit.items()):
        figures = credits.spend_figures(session, cids, unit, now)
        for cid in cids:
            wallet = catalogs[cid].tokens
            assert wallet is not None
            rows = totals.get(cid, {})
            asked = credits.burn_asked(
                {m: _quantity(session, cid, catalogs[cid], m, rows) for m in wallet.burn}, wallet.burn
            )
            usable, used = figures[cid]
            out[cid] = usable - max(asked - used, ZERO)
    return out


def burn_tokens(session: Session, customer_id: str, now: datetime) -> list[credits.Burned]:
    """Burn the customer's token wallet by their usage so far; announce a low or empty balance."""
    return burn_wallets(session, [customer_id], now).get(customer_id, [])


def burn_wallets(
    session: Session,
    customer_ids: Sequence[str],
    now: datetime,
    known: Mapping[str, Catalog] | None = None,
    totals: Mapping[str, Mapping[str, Total]] | None = None,
) -> dict[str, list[credits.Burned]]:
    """Burn the token wallets of these customers (at most 900: one query's parameters) by their
    usage so far, each step one query for them all (a usage batch names many customers);
    then announce a low or empty balance and ask for a due top-up, customer by customer only
    where the balance calls for it. `known`: their catalogs, `totals`: their burn totals, when
    the caller read them."""
    found = known if known is not None else latest_catalogs(session, customer_ids)
    catalogs = {cid: found[cid] for cid in customer_ids if cid in found and found[cid].tokens is not None}
    out: dict[str, list[credits.Burned]] = {}
    read = totals if totals is not None else _totals_of(session, sorted(catalogs))
    for unit, required in sorted(_required(session, catalogs, read).items()):
        done = credits.burn_batch(session, unit, required, now)
        _after_burn(session, unit, {cid: left for cid, (burns, left) in done.items() if burns}, catalogs, now)
        out.update((cid, burns) for cid, (burns, _left) in done.items())
    return out


def _required(
    session: Session, catalogs: Mapping[str, Catalog], totals: Mapping[str, Mapping[str, Total]]
) -> dict[str, dict[str, Decimal]]:
    """What each customer's usage asks of their wallet, per unit, from the running totals."""
    by_unit: dict[str, dict[str, Decimal]] = {}
    for cid, catalog in sorted(catalogs.items()):
        wallet = catalog.tokens
        assert wallet is not None
        rows: Mapping[str, BurnTotal | Total] = totals.get(cid, {})
        if any(m not in rows or not rows[m].counted for m in wallet.burn):  # the first burn: count the history
            count_totals(session, cid, catalog, wallet.burn)
            rows = _totals(session, cid, wallet.burn)
        by_unit.setdefault(wallet.unit, {})[cid] = credits.burn_asked(
            {m: rows[m].quantity for m in wallet.burn}, wallet.burn
        )
    return by_unit


def _after_burn(session: Session, unit: str, left: Mapping[str, Decimal], catalogs: Mapping[str, Catalog],
                now: datetime) -> None:
    """The customers who burned something, with their usable balance now: a low or empty
    balance is announced, a due top-up asked for."""
    levels = credits.low_levels(session, sorted(left), unit, {cid: catalog_level(catalogs[cid], unit) for cid in left})
    for cid in sorted(left):
        credits.announce_balance(session, cid, unit, now, (left[cid], levels[cid]))
        level = levels[cid]
        if level is not None and left[cid] < level:  # below a top-up's threshold, maybe: due_top_up decides
            _request_top_up(session, cid, unit, now)


def _totals_of(session: Session, customer_ids: Sequence[str]) -> dict[str, dict[str, Total]]:
    """The customers' burn totals as committed now (plain rows: no ORM object to refresh)."""
    out: dict[str, dict[str, Total]] = {}
    for start in range(0, len(customer_ids), 900):  # under SQLite's bound-parameter limit
        stmt = select(BurnTotal.customer_id, BurnTotal.metric, BurnTotal.quantity, BurnTotal.counted).where(
            BurnTotal.customer_id.in_(list(customer_ids[start : start + 900]))
        )
        for cid, metric, quantity, counted in session.execute(stmt):
            out.setdefault(cid, {})[metric] = Total(quantity, counted)
    return out


def _request_top_up(session: Session, customer_id: str, unit: str, now: datetime) -> None:
    """Burned below the customer's top-up threshold: ask for the top-up, as an invoice's
    draw-down does (engine/sales/wallet.py). Never twice: the key `auto:N` counts the top-ups
    bought so far, so a redelivered burn or a second worker asks under the same key (one
    purchase), and the pack bought but not paid counts in the balance until it is."""
    due = credits.due_top_up(session, customer_id, unit, now)
    if due is not None:
        pack, key = due
        add_event(session, "credits.top_up_requested", customer_id, {"pack": pack, "key": key, "by": "usage"},
                  time=now)


def handle_token_burn(session: Session, envelope: Mapping[str, Any]) -> int:
    """Bus handler for `usage.recorded`: burn the token wallets of the customers it names (only
    those holding a wallet: one query for the rest). Returns the entries written."""
    named = recorded_customers(envelope.get("properties") or {})
    if not named:
        return 0
    now = _time(envelope.get("time"))
    catalogs, totals = holders_with_totals(session, named)  # one query: the holders, their catalogs and totals
    holders = sorted(catalogs)  # one lock order for every burner
    return sum(
        sum(len(burns) for burns in burn_wallets(session, holders[start : start + 900], now, catalogs, totals).values())
        for start in range(0, len(holders), 900)
    )


def handle_tokens_granted(session: Session, envelope: Mapping[str, Any]) -> int:
    """Bus handler for `credits.granted`: tokens granted (a pack paid) pay first what usage
    burned beyond the wallet, so the balance shown is what is left for new usage. A money
    grant pays invoices: usage never burns it."""
    unit = str((envelope.get("properties") or {}).get("unit") or "USD")
    if not credits.is_custom(unit):
        return 0
    return len(burn_tokens(session, str(envelope["customer_id"]), _time(envelope.get("time"))))


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
