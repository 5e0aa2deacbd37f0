"""Usage aggregation over a period: every aggregation, filters, recurring metrics."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from engine.catalog.model import Metric
from engine.periods import Period
from engine.pricing import UsageEvent, aggregate, parse_event

NOV = Period(date(2026, 11, 1), date(2026, 12, 1))  # 30 days


def ev(i: int, day: int, month: int = 11, type: str = "e", hour: int = 0, **props: object) -> UsageEvent:
    return UsageEvent(f"evt_{i}", type, datetime(2026, month, day, hour, tzinfo=UTC), "cus_1", props)


EVENTS = [
    ev(1, 1, v=D(5), user="a", region="eu"),
    ev(2, 10, v=D(7), user="b", region="us"),
    ev(3, 20, v=D(3), user="a", region="apac"),
    ev(4, 30, hour=23, v=D(1), user="c", region="eu"),
    ev(5, 1, month=12, v=D(100), user="z", region="eu"),  # next period: excluded
    ev(6, 31, month=10, v=D(100), user="y", region="eu"),  # previous period: excluded
    ev(7, 5, type="other", v=D(50)),
]


@pytest.mark.parametrize(
    ("aggregation", "field", "expected"),
    [
        ("count", None, D(4)),
        ("sum", "v", D(16)),
        ("max", "v", D(7)),
        ("unique_count", "user", D(3)),
        ("latest", "v", D(1)),
    ],
)
def test_aggregations(aggregation: str, field: str | None, expected: D) -> None:
    metric = Metric("m", "e", aggregation, field)
    assert aggregate(metric, EVENTS, NOV).quantity == expected


def test_sum_keeps_transactions_in_time_order() -> None:
    shuffled = list(reversed(EVENTS))
    usage = aggregate(Metric("m", "e", "sum", "v"), shuffled, NOV)
    assert usage.transactions == (D(5), D(7), D(3), D(1))


def test_filters() -> None:
    metric = Metric("m", "e", "sum", "v", filters={"region": ("eu", "us")})
    assert aggregate(metric, EVENTS, NOV).quantity == D(13)


def test_empty_period_is_zero() -> None:
    for agg in ("count", "sum", "max", "latest", "weighted_sum"):
        assert aggregate(Metric("m", "e", agg, "v"), [], NOV).quantity == 0


def test_weighted_sum_weighs_the_running_total_by_time_held() -> None:
    metric = Metric("cores", "c", "weighted_sum", "delta")
    events = [
        UsageEvent("a", "c", datetime(2026, 11, 1, tzinfo=UTC), None, {"delta": 4}),
        UsageEvent("b", "c", datetime(2026, 11, 16, tzinfo=UTC), None, {"delta": -2}),
    ]
    # 4 cores for 15 days, 2 cores for 15 days -> 3
    assert aggregate(metric, events, NOV).quantity == D(3)


def test_recurring_weighted_sum_carries_its_total_over() -> None:
    metric = Metric("cores", "c", "weighted_sum", "delta", recurring=True)
    october = [UsageEvent("a", "c", datetime(2026, 10, 3, tzinfo=UTC), None, {"delta": 6})]
    november = [UsageEvent("b", "c", datetime(2026, 11, 21, tzinfo=UTC), None, {"delta": 3})]
    # 6 held all month, +3 for the last 10 of 30 days -> 6 + 1 = 7
    assert aggregate(metric, november, NOV, prior=october).quantity == D(7)
    # without `recurring` nothing carries: 3 x 10/30 = 1
    plain = Metric("cores", "c", "weighted_sum", "delta")
    assert aggregate(plain, november, NOV, prior=october).quantity == D(1)


def test_recurring_latest_carries_the_last_value() -> None:
    metric = Metric("seats", "s", "latest", "count", recurring=True)
    prior = [UsageEvent("a", "s", datetime(2026, 10, 3, tzinfo=UTC), None, {"count": 12})]
    assert aggregate(metric, [], NOV, prior=prior).quantity == D(12)


def test_missing_or_bad_field_names_the_event() -> None:
    metric = Metric("m", "e", "sum", "v")
    with pytest.raises(ValueError, match=r"evt_9: properties.v: missing"):
        aggregate(metric, [ev(9, 2)], NOV)
    with pytest.raises(ValueError, match=r"evt_8: properties.v: 'lots' is not a decimal number"):
        aggregate(metric, [ev(8, 2, v="lots")], NOV)


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        ({"type": "e", "time": "2026-11-01T00:00:00Z"}, "id: required"),
        ({"id": "x", "time": "2026-11-01T00:00:00Z"}, "type: required"),
        ({"id": "x", "type": "e", "time": "2026-11-01T00:00:00"}, "time: .* has no timezone"),
        ({"id": "x", "type": "e", "time": "yesterday"}, "not an ISO 8601"),
        ({"id": "x", "type": "e", "time": "2026-11-01T00:00:00Z", "properties": [1]}, "properties: must be an object"),
    ],
)
def test_parse_event_names_the_bad_field(envelope: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_event(envelope, "events.jsonl:3")
