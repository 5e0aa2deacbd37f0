"""A `count` metric counted in SQL agrees with the Python aggregation billing uses, on both
backends, whatever the properties hold (strings, numbers, booleans, nulls, missing keys,
nested values, awkward names)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from engine.catalog.model import Metric
from engine.clock import TestClock
from engine.periods import Period
from engine.pricing import aggregate
from engine.sales import create_customer, ingest_events
from engine.sales.usage import load_usage
from engine.sales.usage_count import count_in_sql
from engine.store import Database

PERIOD = Period(datetime(2026, 11, 1).date(), datetime(2026, 12, 1).date())
VALUES = ["eu", "us", "EU", "eu ", "", 1, 1.0, True, None, ["eu"], {"eu": 1}, "1"]
KEYS = ["region", "a.b", 'we"ird', "plan tier"]

METRICS = [
    Metric("all", "api.request", "count"),
    Metric("eu_us", "api.request", "count", filters={"region": ("eu", "us")}),
    Metric("two", "api.request", "count", filters={"region": ("eu",), "a.b": ("x", "1")}),
    Metric("odd", "api.request", "count", filters={"plan tier": ("", "us")}),
    Metric("none", "api.request", "count", filters={"region": ()}),
    Metric("other", "page.view", "count", filters={"region": ("us",)}),
]


def _events(rng: random.Random, n: int) -> list[dict[str, object]]:
    start = datetime(2026, 10, 30, tzinfo=UTC)  # some before the period, some after
    out = []
    for i in range(n):
        props = {k: rng.choice(VALUES) for k in KEYS if rng.random() < 0.7}
        out.append(
            {
                "id": f"e{i}",
                "type": rng.choice(["api.request", "api.request", "page.view"]),
                "customer_id": rng.choice(["c1", "c2"]),
                "time": (start + timedelta(hours=rng.randrange(0, 24 * 35))).isoformat(),
                "properties": props,
            }
        )
    return out


def test_sql_count_agrees_with_the_python_aggregation(db: Database) -> None:
    clock = TestClock(datetime(2026, 11, 15, tzinfo=UTC))
    with db.session() as s:
        for c in ("c1", "c2"):
            create_customer(s, {"id": c, "name": c, "email": f"{c}@x.io"}, clock=clock)
        ingest_events(s, _events(random.Random(7), 1500), clock=clock)
    with db.read_session() as s:
        stored = load_usage(s, ["c1"], {"api.request", "page.view"}, PERIOD.start_at, PERIOD.end_at)["c1"]
        for metric in METRICS:
            expected = aggregate(metric, stored, PERIOD).quantity
            assert count_in_sql(s, "c1", metric, PERIOD) == expected, metric.id
        assert count_in_sql(s, "c1", METRICS[0], PERIOD) > Decimal(100)  # the sample is not trivial


@pytest.mark.parametrize(
    "metric",
    [
        Metric("n", "api.request", "count", filters={"region": (1,)}),  # a number: Python's == rules
        Metric("s", "api.request", "sum", field="n"),
        Metric("q", "api.request", "count", filters={'we"ird': ("eu",)}),  # no JSON path names it
    ],
)
def test_what_sql_cannot_match_exactly_is_left_to_python(sqlite_db: Database, metric: Metric) -> None:
    with sqlite_db.read_session() as s:
        assert count_in_sql(s, "c1", metric, PERIOD) is None
