"""What a customer can still spend, for the access check's hard stop (plan `credits:
{on_exhausted: hard_stop}`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from engine import credits
from engine.catalog.model import Catalog, Plan
from engine.periods import Period
from engine.pricing import price_period
from engine.pricing.usage import MetricUsage
from engine.sales.queries import usage_in_period
from engine.sales.tokens import tokens_spendable

ZERO = Decimal(0)


def spendable(session: Session, customer_id: str, catalog: Catalog, plan: Plan, period: Period | None,
              now: datetime, known: Mapping[str, tuple[Period, Decimal]] | None = None) -> Decimal:
    """What the customer can still spend: the wallet's usable credit in the catalog's currency
    less the usage charges accrued in the current period (pre-tax), not invoiced yet. Usage
    burns the wallet in real time this way, with no entry per event: the period's invoice
    draws it down for good. A custom-unit wallet (tokens) is burned by usage itself: its
    figure is in the unit (engine/sales/tokens.py)."""
    if catalog.tokens is not None:
        return tokens_spendable(session, customer_id, catalog, now)
    available = credits.available_total(session, customer_id, catalog.currency, now)
    if period is None:
        return available
    metrics = {p.metric for p in plan.prices if p.metric and p.timing == "in_arrears"}
    usage = {m: MetricUsage(_usage(session, customer_id, catalog, m, period, known or {})) for m in metrics}
    accrued = price_period(catalog, plan, period, usage=usage, timings=("in_arrears",), minimum=False)
    return available - accrued.subtotal + accrued.discount


def _usage(session: Session, customer_id: str, catalog: Catalog, metric: str, period: Period,
           known: Mapping[str, tuple[Period, Decimal]]) -> Decimal:
    """The access snapshot counted it already when its quota window is the billing period."""
    window = known.get(metric)
    if window is not None and window[0] == period:
        return window[1]
    return usage_in_period(session, customer_id, catalog, metric, period)
