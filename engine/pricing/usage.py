"""Usage events and their aggregation over a period (FORMATS §1 metrics, §5 aggregations)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
    when = _event_time(envelope.get("time"), where)
    props = envelope.get("properties") or {}
    if not isinstance(props, Mapping):
        raise ValueError(f"{where}: properties: must be an object")
    customer = envelope.get("customer_id")
    if customer is not None and not isinstance(customer, str):
        raise ValueError(f"{where}: customer_id: must be a string")
    return UsageEvent(id=envelope["id"], type=envelope["type"], time=when, customer_id=customer, properties=props)


def _event_time(raw_time: Any, where: str) -> datetime:
    """An event's `time`: a datetime, or an ISO 8601 string, with a zone."""
    if isinstance(raw_time, datetime):
        when = raw_time
    elif isinstance(raw_time, str):
        try:
            when = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{where}: time: {raw_time!r} is not an ISO 8601 timestamp") from None
    else:
        raise ValueError(f"{where}: time: required, an ISO 8601 timestamp with a zone")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{where}: time: {raw_time!s} has no timezone (add Z or +00:00)")
    return when


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
    how = _AGGREGATIONS.get(metric.aggregation)
    if how is None:
        raise ValueError(f"unknown aggregation {metric.aggregation!r}")
    start, end = period.start_at, period.end_at
    inside = _in_order(e for e in events if matches(metric, e) and start <= e.time < end)
    return how(metric, inside, period, prior)


def _in_order(events: Iterable[UsageEvent]) -> list[UsageEvent]:
    return sorted(events, key=lambda e: e.time)


def _earlier(metric: Metric, prior: Iterable[UsageEvent], period: Period) -> list[UsageEvent]:
    """The events before the period a recurring metric carries over (none for the others)."""
    if not metric.recurring:
        return []
    return _in_order(e for e in prior if matches(metric, e) and e.time < period.start_at)


# Each aggregation of FORMATS §5: (metric, the period's events in time order, period, prior).
_Aggregation = Callable[[Metric, Sequence[UsageEvent], Period, Iterable[UsageEvent]], MetricUsage]


def _count(metric: Metric, inside: Sequence[UsageEvent], period: Period, prior: Iterable[UsageEvent]) -> MetricUsage:
    return MetricUsage(Decimal(len(inside)))


def _sum(metric: Metric, inside: Sequence[UsageEvent], period: Period, prior: Iterable[UsageEvent]) -> MetricUsage:
    values = tuple(_value(metric, e) for e in inside)
    return MetricUsage(sum(values, ZERO), values)


def _max(metric: Metric, inside: Sequence[UsageEvent], period: Period, prior: Iterable[UsageEvent]) -> MetricUsage:
    return MetricUsage(max((_value(metric, e) for e in inside), default=ZERO))


def _unique_count(
    metric: Metric, inside: Sequence[UsageEvent], period: Period, prior: Iterable[UsageEvent]
) -> MetricUsage:
    field = metric.field
    assert field is not None
    return MetricUsage(Decimal(len({_hashable(e.properties.get(field)) for e in inside if field in e.properties})))


def _latest(metric: Metric, inside: Sequence[UsageEvent], period: Period, prior: Iterable[UsageEvent]) -> MetricUsage:
    last = inside[-1:] or _earlier(metric, prior, period)[-1:]
    return MetricUsage(_value(metric, last[0]) if last else ZERO)


def _weighted_sum(
    metric: Metric, inside: Sequence[UsageEvent], period: Period, prior: Iterable[UsageEvent]
) -> MetricUsage:
    opening = sum((_value(metric, e) for e in _earlier(metric, prior, period)), ZERO)
    return MetricUsage(_weighted(metric, inside, period, opening))


_AGGREGATIONS: dict[str, _Aggregation] = {
    "count": _count,
    "sum": _sum,
    "max": _max,
    "unique_count": _unique_count,
    "latest": _latest,
    "weighted_sum": _weighted_sum,
}


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
    find = _NEGATIVE.get(metric.aggregation, _first_negative)
    if metric.field is None or find is None:
        return None
    start = period.start_at
    ordered = _in_order(e for e in events if matches(metric, e) and e.time < period.end_at)
    if not metric.recurring:
        ordered = [e for e in ordered if e.time >= start]
    return find(metric, ordered, start)


# Where each aggregation finds its first negative value, in the matching events up to the
# period's end in time order (a recurring metric's earlier ones included).
_Negative = Callable[[Metric, Sequence[UsageEvent], datetime], "tuple[UsageEvent, Decimal] | None"]


def _first_negative(
    metric: Metric, ordered: Sequence[UsageEvent], start: datetime
) -> tuple[UsageEvent, Decimal] | None:
    return next(((e, v) for e in ordered if e.time >= start and (v := _value(metric, e)) < ZERO), None)


def _negative_latest(
    metric: Metric, ordered: Sequence[UsageEvent], start: datetime
) -> tuple[UsageEvent, Decimal] | None:
    last = ([e for e in ordered if e.time >= start] or ordered)[-1:]
    return next(((e, v) for e in last if (v := _value(metric, e)) < ZERO), None)


def _negative_running(
    metric: Metric, ordered: Sequence[UsageEvent], start: datetime
) -> tuple[UsageEvent, Decimal] | None:
    running = ZERO
    for event in ordered:
        running += _value(metric, event)
        if running < ZERO:
            return event, running
    return None


_NEGATIVE: dict[str, _Negative | None] = {
    "count": None,
    "unique_count": None,
    "latest": _negative_latest,
    "weighted_sum": _negative_running,
}


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
