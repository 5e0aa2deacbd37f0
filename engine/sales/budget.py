"""Spend budgets: what a customer spent in their current billing period, set against the
budget they declared (engine/credits/budgets.py keeps it).

Spend, in the period's currency, before tax and after discounts, never rounded until shown:
  - usage accrued in the current period: the in-arrears prices of the plan over the period's
    usage so far, priced by the same code as the quote and the invoice (`price_period`);
  - fixed fees invoiced for the period: the in-advance lines (base fee, seats, their
    proration) of the subscription's issued invoices whose line period starts in it.
Not counted: tax, credit packs bought, one-off charges, last period's usage billed at the
start of this one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import credits
from engine.catalog.model import Catalog, Plan
from engine.clock import Clock
from engine.money import to_decimal
from engine.periods import Period
from engine.pricing import price_period
from engine.pricing.usage import MetricUsage
from engine.sales.common import money, now_of
from engine.sales.customers import load_customer
from engine.sales.errors import Conflict, SalesError
from engine.sales.models import Invoice, InvoiceLine
from engine.sales.queries import customer_plan, usage_in_period
from engine.sales.usage import recorded_customers
from engine.store import add_event

ZERO = Decimal(0)
Known = Mapping[str, tuple[Period, Decimal]]


def current_period(subscription: Mapping[str, Any]) -> Period | None:
    current = subscription.get("current_period")
    if not isinstance(current, dict):
        return None
    return Period(date.fromisoformat(current["start"]), date.fromisoformat(current["end"]))


def spent(session: Session, customer_id: str, subscription: Mapping[str, Any], catalog: Catalog, plan: Plan,
          period: Period, known: Known | None = None) -> Decimal:
    """The period's spend (module docstring), unrounded; `known` is usage counted already."""
    metrics = {p.metric for p in plan.prices if p.metric and p.timing == "in_arrears"}
    usage = {m: MetricUsage(_usage(session, customer_id, catalog, m, period, known or {})) for m in metrics}
    accrued = price_period(catalog, plan, period, usage=usage, timings=("in_arrears",), minimum=False)
    rows = session.execute(
        select(InvoiceLine.amount, InvoiceLine.discount).join(Invoice, Invoice.id == InvoiceLine.invoice_id).where(
            InvoiceLine.subscription_id == str(subscription["id"]), InvoiceLine.timing == "in_advance",
            InvoiceLine.period_start >= period.start, InvoiceLine.period_start < period.end,
            Invoice.status.not_in(("draft", "void"))))
    fixed = sum((amount - discount for amount, discount in rows), ZERO)
    return accrued.subtotal - accrued.discount + fixed


def _usage(session: Session, customer_id: str, catalog: Catalog, metric: str, period: Period, known: Known) -> Decimal:
    window = known.get(metric)
    if window is not None and window[0] == period:
        return window[1]
    return usage_in_period(session, customer_id, catalog, metric, period)


def budget_left(session: Session, customer_id: str, subscription: Mapping[str, Any], catalog: Catalog, plan: Plan,
                known: Known | None = None) -> Decimal | None:
    """For the access check: what is left of a hard-stop budget this period (at or below
    zero: spent); None when the customer has no budget that stops (no further query then)."""
    budget = credits.get_budget(session, customer_id)
    period = current_period(subscription)
    if budget is None or not budget.hard_stop or period is None:
        return None
    return budget.amount - spent(session, customer_id, subscription, catalog, plan, period, known)


def check_budget(session: Session, customer_id: str, now: datetime) -> list[int]:
    """Publish spend.threshold_reached for each alert percentage the period's spend reached
    for the first time; returns those percentages. Once per threshold and period, whoever
    asks and however often (a redelivered event, two workers): the alert row decides."""
    budget = credits.get_budget(session, customer_id)
    if budget is None:
        return []
    found = customer_plan(session, customer_id)
    period = current_period(found[0]) if found is not None else None
    if found is None or period is None:
        return []
    subscription, catalog, plan = found
    total = spent(session, customer_id, subscription, catalog, plan, period)
    levels = list(budget.alerts) + ([100] if budget.hard_stop and 100 not in budget.alerts else [])
    new = [pct for pct in credits.reached(budget.amount, sorted(levels), total)
           if credits.raise_once(session, customer_id, "spend", f"{period.start.isoformat()}:{pct}", now)]
    for pct in new:
        add_event(session, "spend.threshold_reached", customer_id, {
            "threshold": pct, "budget": money(budget.amount, budget.currency), "spent": money(total, budget.currency),
            "currency": budget.currency, "hard_stop": budget.hard_stop, "plan": plan.id,
            "period_start": period.start.isoformat(), "period_end": period.end.isoformat()}, time=now)
    return new


def set_budget(session: Session, customer_id: str, spec: Mapping[str, Any], *, clock: Clock) -> dict[str, Any]:
    """The customer's budget; alerts and hard_stop default to their plan's `budget`. Checks
    everything first (unknown customer: NotFound on customer_id; bad values: CreditsError)."""
    customer = load_customer(session, customer_id)
    found = customer_plan(session, customer.id)
    currency = customer.currency or (found[1].currency if found is not None else None)
    if currency is None:
        raise Conflict("customer_id", f"customer {customer.id} has no currency yet: subscribe them first")
    defaults = found[2].budget if found is not None else None
    alerts = spec.get("alerts")
    req = credits.BudgetRequest(
        amount=_decimal(spec.get("amount"), "amount"), currency=currency,
        alerts=_alerts(alerts) if alerts is not None else (defaults.alerts if defaults else ()),
        hard_stop=bool(spec["hard_stop"]) if spec.get("hard_stop") is not None else bool(defaults and defaults.hard_stop),
        low_balance=None if spec.get("low_balance") is None else _decimal(spec["low_balance"], "low_balance"))
    now = now_of(clock)
    row = credits.set_budget(session, customer.id, req, now)
    out = credits.budget_to_dict(row)
    add_event(session, "credits.budget_changed", customer.id, out, time=now)  # the access view drops its snapshot
    session.flush()
    check_budget(session, customer.id, now)  # a budget set below what is spent alerts at once
    return out


def _alerts(value: Any) -> tuple[int, ...]:
    """Percentages in any order, kept ascending; a repeat or a non-integer names its place."""
    if not isinstance(value, list | tuple):
        raise SalesError("alerts", "a list of percentages from 1 to 100")
    for i, pct in enumerate(value):
        if not isinstance(pct, int) or isinstance(pct, bool) or not 1 <= pct <= 100:
            raise SalesError(f"alerts[{i}]", f"a whole percentage from 1 to 100, not {pct!r}")
        if pct in value[:i]:
            raise SalesError(f"alerts[{i}]", f"{pct} is listed twice")
    return tuple(sorted(value))


def _decimal(value: Any, field: str) -> Decimal:
    if value is None:
        raise SalesError(field, "required")
    try:
        return to_decimal(value, field)
    except ValueError as exc:
        raise SalesError(field, str(exc).removeprefix(f"{field}: ")) from None


def get_budget(session: Session, customer_id: str) -> dict[str, Any] | None:
    load_customer(session, customer_id)
    row = credits.get_budget(session, customer_id)
    return None if row is None else credits.budget_to_dict(row)


def budget_status(session: Session, customer_id: str) -> dict[str, Any] | None:
    """The budget (None: none) with the current period, what was spent in it, the alert
    percentages announced in it and whether a hard stop holds (`exhausted`)."""
    out = get_budget(session, customer_id)
    if out is None:
        return None
    found = customer_plan(session, customer_id)
    period = current_period(found[0]) if found is not None else None
    if found is None or period is None:
        return {**out, "period": None, "spent": None, "alerts_reached": [], "exhausted": False}
    total = spent(session, customer_id, found[0], found[1], found[2], period)
    prefix = f"{period.start.isoformat()}:"
    announced = [int(k.removeprefix(prefix)) for k in credits.raised(session, customer_id, "spend")
                 if k.startswith(prefix)]
    return {**out, "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
            "spent": money(total, str(out["currency"])), "alerts_reached": sorted(announced),
            "exhausted": bool(out["hard_stop"]) and total >= Decimal(str(out["amount"]))}


def delete_budget(session: Session, customer_id: str, *, clock: Clock) -> bool:
    load_customer(session, customer_id)
    if not credits.delete_budget(session, customer_id):
        return False
    add_event(session, "credits.budget_changed", customer_id, {"customer_id": customer_id, "deleted": True},
              time=now_of(clock))
    return True


def _time(envelope: Mapping[str, Any]) -> datetime:
    when = envelope.get("time")
    return when if isinstance(when, datetime) else datetime.fromisoformat(str(when).replace("Z", "+00:00"))


def handle_spend_changed(session: Session, envelope: Mapping[str, Any]) -> list[int]:
    """Bus handler for `usage.recorded` (the customers it names) and `invoice.finalized` (its
    customer): check their budgets. Customers without one cost a primary-key read."""
    named = recorded_customers(envelope.get("properties") or {}) or [str(envelope.get("customer_id") or "")]
    now = _time(envelope)
    out: list[int] = []
    for customer_id in sorted(c for c in named if c):
        out += check_budget(session, customer_id, now)
    return out
