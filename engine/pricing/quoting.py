"""A quote from plain inputs (FORMATS §5): shared by `billing quote` and `POST /v1/quotes`.

Errors raise QuoteError naming the input field (`plan`, `quantity`, `usage.api_calls`,
`coupon`, `period`, `events[3].time`, ...); the CLI shows them as flags, the API as JSON paths.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from engine.catalog.model import Catalog, Plan
from engine.money import to_decimal
from engine.periods import Period, calendar_period
from engine.pricing.discounts import CouponError, Discount, check_redeemable, coupon_discount
from engine.pricing.document import Document, whole_period
from engine.pricing.taxes import NO_TAX, TaxDecision, tax_for
from engine.pricing.usage import EventValueError, MetricUsage, UsageEvent, aggregate_all, negative_source

# (catalog=, plan=, customer=, usage=, period=, quantity=) -> (discounts, rules trace)
PromotionSource = Callable[..., tuple[list[Discount], list[dict[str, Any]]]]


class QuoteError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class QuoteNotFound(QuoteError):
    """The plan, metric or coupon named is not in the catalog (HTTP 404, like any unknown id)."""


class QuoteConflict(QuoteError):
    """The catalog's terms refuse it: a coupon expired, for another plan (HTTP 409)."""


def parse_amount(value: Any, field: str) -> Decimal:
    """A non-negative decimal from a string or int (floats are refused: not exact)."""
    if isinstance(value, bool | float):
        raise QuoteError(field, f"{value!r} is not a decimal string or integer")
    try:
        result = to_decimal(value, field)
    except ValueError as exc:
        raise QuoteError(field, str(exc).split(": ", 1)[-1]) from None
    if result < 0:
        raise QuoteError(field, f"{value} is negative")
    return result


def _refuse_negative_usage(
    catalog: Catalog, plan: Plan, aggregated: Mapping[str, MetricUsage], events: Sequence[UsageEvent], period: Period
) -> None:
    """A priced metric the events took below 0 is the events' mistake: name the event and its
    field (the price would otherwise fail later on a quantity nobody typed). A metric the plan
    does not price is not a quantity here, so its events are left alone."""
    priced = {price.metric for price in plan.prices if price.metric is not None}
    for metric_id, found in aggregated.items():
        if found.quantity >= 0 or metric_id not in priced:
            continue
        metric = catalog.metrics[metric_id]
        source = negative_source(metric, events, period, prior=events)
        if source is None:  # cannot happen: a negative aggregate has an event behind it
            raise QuoteError("events", f"metric {metric_id} adds up to {found.quantity}, below 0")
        event, value = source
        index = next(i for i, e in enumerate(events) if e.id == event.id)
        raw = event.properties[metric.field or ""]
        if metric.aggregation == "weighted_sum":
            why = f"{raw} takes the running total of metric {metric_id} (weighted_sum) to {value}, below 0"
        else:
            why = f"{raw} is negative; metric {metric_id} ({metric.aggregation}) is a quantity, 0 or more"
        raise QuoteError(f"events[{index}].properties.{metric.field}", why)


def resolve_plan(catalog: Catalog, plan_id: str) -> Plan:
    try:
        return catalog.plan(plan_id)
    except KeyError as exc:
        raise QuoteNotFound("plan", str(exc.args[0])) from None


def default_period(plan: Plan, events: Sequence[UsageEvent], today: date) -> Period:
    """The plan's calendar period holding the first event, or today."""
    day = min(e.time for e in events).date() if events else today
    return calendar_period(plan.interval, day)


def quote(
    catalog: Catalog,
    plan: Plan,
    *,
    today: date,
    quantity: Any = 1,
    usage: Mapping[str, Any] | None = None,
    events: Sequence[UsageEvent] = (),
    coupon: str | None = None,
    customer: Mapping[str, Any] | None = None,
    period: Period | None = None,
    promotions: PromotionSource | None = None,
) -> Document:
    q = parse_amount(quantity, "quantity")
    if period is None:
        period = default_period(plan, events, today)
    aggregated = _event_usage(catalog, plan, events, period) if events else {}
    aggregated.update(_given_usage(catalog, usage or {}))
    customer = dict(customer or {})
    return period_document(
        catalog,
        plan,
        period,
        quantity=q,
        usage=aggregated,
        customer=customer,
        coupons=_coupon(catalog, plan, coupon, period) if coupon else [],
        promotions=promotions,
        tax=tax_for(catalog, customer),
    )


def _event_usage(catalog: Catalog, plan: Plan, events: Sequence[UsageEvent], period: Period) -> dict[str, MetricUsage]:
    """The usage the events add up to, an event's mistake named by its index."""
    try:
        aggregated = aggregate_all(catalog.metrics, events, period, prior=events)
    except EventValueError as exc:
        index = next(i for i, e in enumerate(events) if e.id == exc.event_id)
        raise QuoteError(f"events[{index}].{exc.path}", exc.reason) from None
    except ValueError as exc:
        raise QuoteError("events", str(exc)) from None
    _refuse_negative_usage(catalog, plan, aggregated, events, period)
    return aggregated


def _given_usage(catalog: Catalog, usage: Mapping[str, Any]) -> dict[str, MetricUsage]:
    """Usage given as quantities by metric (these win over the events' for the same metric)."""
    out: dict[str, MetricUsage] = {}
    for metric, value in usage.items():
        if metric not in catalog.metrics:
            known = ", ".join(sorted(catalog.metrics)) or "none"
            raise QuoteNotFound("usage", f"unknown metric {metric!r}; the catalog has {known}")
        out[metric] = MetricUsage(parse_amount(value, f"usage.{metric}"))
    return out


def _coupon(catalog: Catalog, plan: Plan, coupon: str, period: Period) -> list[Discount]:
    try:
        code = catalog.coupon(coupon)
        check_redeemable(code, plan.id, period.start)
    except KeyError as exc:
        raise QuoteNotFound("coupon", str(exc.args[0])) from None
    except CouponError as exc:
        raise QuoteConflict("coupon", str(exc)) from None
    return [coupon_discount(code)] if code.discounts else []  # a credit-only coupon prices nothing


def period_document(
    catalog: Catalog,
    plan: Plan,
    period: Period,
    *,
    quantity: Decimal,
    usage: Mapping[str, MetricUsage],
    customer: Mapping[str, Any],
    coupons: Sequence[Discount] = (),
    promotions: PromotionSource | None = None,
    subscription: Mapping[str, Any] | None = None,
    tax: TaxDecision = NO_TAX,
) -> Document:
    """A period from plain inputs, priced as the engine invoices it: the quote's and the
    simulator's one way to ask the pricing rules and price the period (`whole_period`).

    The in-advance prices are priced when the period opens (no usage known yet), usage and
    the minimum when it closes (so a rule on usage sees it)."""
    extra = {} if subscription is None else {"subscription": subscription}

    def period_discounts(known: Mapping[str, MetricUsage]) -> tuple[list[Discount], list[dict[str, Any]]]:
        if promotions is None:
            return list(coupons), []
        found, trace = promotions(
            catalog=catalog, plan=plan, customer=customer, usage=known, period=period, quantity=quantity, **extra
        )
        return [*found, *coupons], trace

    opening, opening_trace = period_discounts({})
    closing, closing_trace = period_discounts(usage)
    trace = opening_trace + [t for t in closing_trace if t not in opening_trace]
    return whole_period(
        catalog,
        plan,
        period,
        quantity=quantity,
        usage=usage,
        advance_discounts=opening,
        arrears_discounts=closing,
        tax=tax,
        rules=trace,
    )
