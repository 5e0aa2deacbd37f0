"""What a customer can still spend, for the access check's hard stop (plan `credits:
{on_exhausted: hard_stop}`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from engine import credits
from engine.catalog.model import Catalog, Plan
from engine.periods import Period
from engine.pricing import price_period
from engine.pricing.usage import MetricUsage
from engine.sales.queries import usage_in_period
from engine.sales.tokens import tokens_spendable_many

ZERO = Decimal(0)


# What the access view asks per customer: (customer id, catalog, plan, billing period, the
# usage its snapshot counted already with its window).
SpendAsk = tuple[str, Catalog, Plan, Period | None, Mapping[str, tuple[Period, Decimal]]]


def spendable(session: Session, customer_id: str, catalog: Catalog, plan: Plan, period: Period | None,
              now: datetime, known: Mapping[str, tuple[Period, Decimal]] | None = None) -> Decimal:
    """What the customer can still spend: the wallet's usable credit in the catalog's currency
    less the usage charges accrued in the current period (pre-tax), not invoiced yet. Usage
    burns the wallet in real time this way, with no entry per event: the period's invoice
    draws it down for good. A custom-unit wallet (tokens) is burned by usage itself: its
    figure is in the unit (engine/sales/tokens.py)."""
    return spendable_many(session, [(customer_id, catalog, plan, period, known or {})], now)[customer_id]


def spendable_many(session: Session, asks: Sequence[SpendAsk], now: datetime) -> dict[str, Decimal]:
    """`spendable` for many customers (the access view reloading a usage batch's customers):
    the wallets read in one query per currency (token wallets: `tokens_spendable_many`), the
    accrued usage priced customer by customer from what their snapshots counted."""
    out = tokens_spendable_many(session, {a[0]: a[1] for a in asks if a[1].tokens is not None}, now)
    money = [a for a in asks if a[1].tokens is None]
    for currency in sorted({a[1].currency for a in money}):
        mine = [a for a in money if a[1].currency == currency]
        available = credits.available_totals(session, [a[0] for a in mine], currency, now)
        out.update((a[0], available[a[0]] - _accrued(session, a)) for a in mine)
    return out


def _accrued(session: Session, ask: SpendAsk) -> Decimal:
    """The usage charges accrued in the period, after discounts (zero without a period)."""
    customer_id, catalog, plan, period, known = ask
    if period is None:
        return ZERO
    metrics = {p.metric for p in plan.prices if p.metric and p.timing == "in_arrears"}
    usage = {m: MetricUsage(_usage(session, customer_id, catalog, m, period, known)) for m in metrics}
    accrued = price_period(catalog, plan, period, usage=usage, timings=("in_arrears",), minimum=False)
    return accrued.subtotal - accrued.discount


def _usage(session: Session, customer_id: str, catalog: Catalog, metric: str, period: Period,
           known: Mapping[str, tuple[Period, Decimal]]) -> Decimal:
    """The access snapshot counted it already when its quota window is the billing period."""
    window = known.get(metric)
    if window is not None and window[0] == period:
        return window[1]
    return usage_in_period(session, customer_id, catalog, metric, period)
