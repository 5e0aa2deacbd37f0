from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from engine.catalog import load_catalog_text
from engine.clock import TestClock
from engine.sales import publish_catalog, subscription_invoices
from engine.store import Database

TESTCO = """
catalog: testco
currency: USD
rounding: half_up
taxes: {DE: 19, CH: 8.1}
metrics:
  api_calls: {event: api.request, aggregation: count}
coupons:
  HALF: {percent_off: 50, duration: repeating, periods: 2}
plans:
  basic:
    name: Basic
    interval: month
    trial_days: 14
    upgrade_to: [plus]
    prices:
      - {id: base, name: Basic base fee, model: flat, amount: "30.00"}
      - {id: seats, name: Seats, model: per_unit, unit_amount: "10.00"}
      - {id: calls, name: API calls, model: per_unit, metric: api_calls, unit_amount: "0.10"}
  plus:
    name: Plus
    interval: month
    prices:
      - {id: base, name: Plus base fee, model: flat, amount: "60.00"}
      - {id: seats, name: Seats, model: per_unit, unit_amount: "12.00"}
      - {id: calls, name: API calls, model: per_unit, metric: api_calls, unit_amount: "0.05"}
  committed:
    name: Committed
    interval: month
    minimum_amount: "100.00"
    prices:
      - {id: base, name: Platform, model: flat, amount: "20.00"}
      - {id: calls, name: API calls, model: per_unit, metric: api_calls, unit_amount: "1.00"}
  annual:
    name: Annual
    interval: year
    prices:
      - {id: base, name: Annual fee, model: flat, amount: "300.00"}
  ebook:
    name: E-book
    interval: once
    prices:
      - {id: book, name: E-book, model: flat, amount: "19.99"}
"""


def make_testco(**replace: str) -> Any:
    text = TESTCO
    for old, new in replace.items():
        text = text.replace(old, new)
    return load_catalog_text(text, "testco.yaml")


@pytest.fixture
def published(db: Database, clock: TestClock) -> Database:
    with db.session() as s:
        publish_catalog(s, make_testco(), "tester", "v1", clock=clock)
    return db


@pytest.fixture
def sqlite_published(sqlite_db: Database, clock: TestClock) -> Iterator[Database]:
    with sqlite_db.session() as s:
        publish_catalog(s, make_testco(), "tester", "v1", clock=clock)
    yield sqlite_db


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def D(x: str) -> Decimal:
    return Decimal(x)


def invoices(db: Database, sub_id: str) -> list[dict[str, Any]]:
    with db.session() as s:
        return subscription_invoices(s, sub_id)


def amounts(inv: dict[str, Any]) -> list[tuple[str, str]]:
    return [(line["price_id"], line["amount"]) for line in inv["lines"]]


def event(i: int | str, customer: str, when: str, type: str = "api.request", **props: Any) -> dict[str, Any]:
    return {"id": f"e-{i}", "type": type, "customer_id": customer, "time": when, "properties": props}
