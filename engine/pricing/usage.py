"""Usage events and their aggregation over a period (FORMATS §1 metrics, §5 aggregations)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.catalog.model import Metric
from engine.money import ZERO, number_to_decimal
from engine.periods import Period


@dataclass(frozen=True, slots=True)
class UsageEvent:
    id: str
    type: str
    time: datetime
    customer_id: str | None = None
    properties: Mapping[str, Any] = dc_field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricUsage:
    """A metric's aggregate for a period and, for volume metrics, the transactions in time
    order (percentage prices charge per transaction)."""

    quantity: Decimal
    transactions: tuple[Decimal, ...] | None = None


def parse_event(envelope: Mapping[str, Any], where: str = "event") -> UsageEvent:
    """Validate an event envelope (FORMATS §3). Raises ValueError naming the field."""
    if not isinstance(envelope, Mapping):
        raise ValueError(f"{where}: an event is a JSON object")
    for key in ("id", "type"):
        value = envelope.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {key}: required, a non-empty string")
    raw_time = envelope.get("time")
    if not isinstance(raw_time, str | datetime):
        raise ValueError(f"{where}: time: required, an ISO 8601 timestamp with a zone")
    if isinstance(raw_time, str):
        try:
            when = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{where}: time: {raw_time!r} is not an ISO 8601 timestamp") from None
    else:
        when = raw_time
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{where}: time: {raw_time!s} has no timezone (add Z or +00:00)")
    props = envelope.get("properties") or {}
    if not isinstance(props, Mapping):
        raise ValueError(f"{where}: properties: must be an object")
    customer = envelope.get("customer_id")
    if customer is not None and not isinstance(customer, str):
        raise ValueError(f"{where}: customer_id: must be a string")
    return UsageEvent(id=envelope["id"], type=envelope["type"], time=when, customer_id=customer, properties=props)


def matches(metric: Metric, event: UsageEvent) -> bool:
    if event.type != metric.event:
        return False
    props = event.properties
    return all(props.get(key) in allowed for key, allowed in metric.filters.items())


class EventValueError(ValueError):
    """An event's property a metric reads is missing or not a number in range."""

    def __init__(self, event_id: str, path: str, reason: str) -> None:
        super().__init__(f"event {event_id}: {path}: {reason}")
        self.event_id, self.path, self.reason = event_id, path, reason


def _value(metric: Metric, event: UsageEvent) -> Decimal:
    assert metric.field is not None
    path = f"properties.{metric.field}"
    if metric.field not in event.properties:
        raise EventValueError(event.id, path, f"missing (metric {metric.id} sums it)")
    raw = event.properties[metric.field]
    try:
        return number_to_decimal(raw, f"event {event.id}: properties.{metric.field}")
    except ValueError as exc:
        why = str(exc).rsplit(": ", 1)[-1]
        raise EventValueError(event.id, path, f"{why} (metric {metric.id})") from None


def aggregate(
    metric: Metric,
    events: Iterable[UsageEvent],
    period: Period,
    *,
    prior: Iterable[UsageEvent] = (),
) -> MetricUsage:
    """Aggregate the events of `period` for `metric`.

    `prior` are this customer's events before the period; only recurring metrics read them
    (latest carries the last value over, weighted_sum its running total)."""
    start, end = period.start_at, period.end_at
    inside = sorted((e for e in events if matches(metric, e) and start <= e.time < end), key=lambda e: e.time)
    agg = metric.aggregation
    if agg == "count":
        return MetricUsage(Decimal(len(inside)))
    if agg == "sum":
        values = tuple(_value(metric, e) for e in inside)
        return MetricUsage(sum(values, ZERO), values)
    if agg == "max":
        return MetricUsage(max((_value(metric, e) for e in inside), default=ZERO))
    if agg == "unique_count":
        assert metric.field is not None
        return MetricUsage(
            Decimal(len({_hashable(e.properties.get(metric.field)) for e in inside if metric.field in e.properties}))
        )
    earlier = (
        sorted((e for e in prior if matches(metric, e) and e.time < start), key=lambda e: e.time)
        if metric.recurring
        else []
    )
    if agg == "latest":
        if inside:
            return MetricUsage(_value(metric, inside[-1]))
        return MetricUsage(_value(metric, earlier[-1]) if earlier else ZERO)
    if agg == "weighted_sum":
        return MetricUsage(_weighted(metric, inside, period, sum((_value(metric, e) for e in earlier), ZERO)))
    raise ValueError(f"unknown aggregation {agg!r}")


def _weighted(metric: Metric, inside: Sequence[UsageEvent], period: Period, opening: Decimal) -> Decimal:
    """The running total weighed by the share of the period it was held."""
    total_seconds = Decimal(int((period.end_at - period.start_at).total_seconds()))
    running = opening
    cursor = period.start_at
    weighted = ZERO
    for event in inside:
        held = Decimal(int((event.time - cursor).total_seconds()))
        weighted += running * held
        running += _value(metric, event)
        cursor = event.time
    weighted += running * Decimal(int((period.end_at - cursor).total_seconds()))
    return weighted / total_seconds


def negative_source(
    metric: Metric, events: Iterable[UsageEvent], period: Period, *, prior: Iterable[UsageEvent] = ()
) -> tuple[UsageEvent, Decimal] | None:
    """The event that makes `metric`'s aggregate negative, with the value it brought it to,
    or None. A quantity below 0 cannot be priced, and the answer must name the event that
    caused it, not the price that choked on it: `latest` takes the last value as is, and
    `weighted_sum` goes below 0 once its running total does (a negative delta alone is fine)."""
    if metric.field is None or metric.aggregation in ("count", "unique_count"):
        return None
    start, end = period.start_at, period.end_at
    ordered = sorted((e for e in events if matches(metric, e) and e.time < end), key=lambda e: e.time)
    if not metric.recurring:
        ordered = [e for e in ordered if e.time >= start]
    if metric.aggregation == "weighted_sum":
        running = ZERO
        for event in ordered:
            running += _value(metric, event)
            if running < ZERO:
                return event, running
        return None
    inside = [e for e in ordered if e.time >= start]
    if metric.aggregation == "latest":
        last = (inside or ordered)[-1:]
        return next(((e, v) for e in last if (v := _value(metric, e)) < ZERO), None)
    return next(((e, v) for e in inside if (v := _value(metric, e)) < ZERO), None)


def _hashable(value: Any) -> Any:
    if isinstance(value, list | dict):
        return repr(value)
    return value


def aggregate_all(
    metrics: Mapping[str, Metric],
    events: Iterable[UsageEvent],
    period: Period,
    *,
    prior: Iterable[UsageEvent] = (),
) -> dict[str, MetricUsage]:
    events = list(events)
    prior = list(prior)
    return {mid: aggregate(m, events, period, prior=prior) for mid, m in metrics.items()}
