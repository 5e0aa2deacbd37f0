"""One price everywhere, over HTTP on a test clock: the published pricing rules reach invoices,
both sides of a proration carry the same discounts, late usage respects the minimum, and the
documents of a period add up, cent for cent, to the quote of that period (issue 15,
findings 2, 3 and 4)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import sales
from engine.api import create_key
from engine.catalog import load_catalog_text
from engine.config import Settings
from engine.rules import publish_ruleset
from engine.system import build_system
from tests.api.conftest import start_server

D = Decimal
CENT = D("0.01")

CATALOG = """
catalog: oneprice
currency: EUR
rounding: half_up
taxes: {DE: 19}
metrics:
  api_calls: {event: api.request, aggregation: count}
coupons:
  HALF: {percent_off: 50, duration: repeating, periods: 2}
  TWENTY: {percent_off: 20, duration: forever}
  TEN: {amount_off: "10.00", duration: once}
plans:
  basic:
    name: Basic
    interval: month
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
      - {id: calls, name: API calls, model: per_unit, metric: api_calls, unit_amount: "0.05"}
"""

PROMOTIONS = """
ruleset: promotions
rules:
  - id: edu-50
    on: price.calculate
    when: {customer.segment: edu}
    then:
      - discount: {percent: 50, reason: Education discount}
"""


@dataclass
class Engine:
    url: str
    admin: httpx.Client
    product: httpx.Client

    def post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        r = self.admin.post(path, json=body)
        assert r.status_code == status, r.text
        return r.json()

    def get(self, path: str) -> Any:
        r = self.admin.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def advance(self, to: str) -> None:
        self.post("/v1/clock/advance", {"to": to})

    def invoices(self, customer: str) -> list[dict[str, Any]]:
        listed = self.get(f"/v1/customers/{customer}/invoices")["items"]
        return [self.get(f"/v1/invoices/{i['id']}") for i in sorted(listed, key=lambda i: i["number"])]

    def quote(self, **body: Any) -> dict[str, Any]:
        r = self.product.post("/v1/quotes", json=body)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/one.db", test_clock="2026-02-01T00:00:00Z")
    system = build_system(settings)
    rules = tmp_path / "promotions.yaml"
    rules.write_text(PROMOTIONS)
    with system.db.session() as s:
        sales.publish_catalog(s, load_catalog_text(CATALOG, "oneprice.yaml"), "test", clock=system.clock)
        publish_ruleset(s, rules, "test", clock=system.clock)
        _, admin = create_key(s, "admin", now=system.clock.now())
        _, product = create_key(s, "product", now=system.clock.now())
    system.sync_rules()
    stop = threading.Event()
    system.start_workers(stop)
    server, thread, url = start_server(system)
    headers = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as a, httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {product}"}, timeout=30
    ) as p:
        yield Engine(url, a, p)
    server.should_exit = True
    thread.join(10)
    stop.set()
    system.db.dispose()


def _customer(engine: Engine, cid: str, **extra: Any) -> None:
    engine.post("/v1/customers", {"id": cid, "email": f"{cid}@example.com", "name": cid, "country": "DE", **extra},
                 status=201)


def _calls(engine: Engine, cid: str, n: int, at: str, prefix: str = "e") -> None:
    body = [{"id": f"{prefix}{cid}{i}", "type": "api.request", "customer_id": cid, "time": at} for i in range(n)]
    r = engine.product.post("/v1/events", json=body)
    assert r.status_code == 202, r.text


def _round(x: Decimal) -> Decimal:
    return x.quantize(CENT, ROUND_HALF_UP)


def _net_with_tax(amount: Decimal, percent_off: Decimal) -> Decimal:
    """One line as the catalog's conventions price it: discount and 19 % tax rounded per line."""
    discount = _round(amount * percent_off / 100)
    return amount - discount + _round((amount - discount) * D("0.19"))


def _period_lines(invoices: list[dict[str, Any]], start: str) -> list[dict[str, Any]]:
    return [x for inv in invoices for x in inv["lines"] if x["period"] and x["period"]["start"] == start]


def _sum(lines: list[dict[str, Any]], key: str = "total") -> Decimal:
    return sum((D(x[key]) for x in lines), D(0))


def test_an_edu_promotion_reaches_every_invoice_and_equals_the_quote(engine: Engine) -> None:
    _customer(engine, "cus_edu", segment="edu")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_edu", "plan": "basic"}, status=201)
    first = engine.invoices("cus_edu")[0]
    # February opens: 30.00 + 10.00, both half price, 19 % on what is left, per line.
    assert D(first["total"]) == _net_with_tax(D("30.00"), D(50)) + _net_with_tax(D("10.00"), D(50)) == D("23.80")
    assert first["discounts"] == [{"source": "rule:promotions/edu-50", "reason": "Education discount",
                                   "amount": "20.00"}]
    quote = engine.quote(plan="basic", customer_id="cus_edu", period="2026-02-01/2026-03-01")
    assert quote["rules"] and quote["rules"][0]["rule"] == "edu-50"
    advance_part = [x for x in quote["lines"] if x["timing"] == "in_advance"]
    assert _sum(first["lines"]) == _sum(advance_part) == D(first["total"])

    _calls(engine, "cus_edu", 7, "2026-02-10T10:00:00Z")
    engine.advance("2026-03-01T00:00:00Z")
    second = engine.invoices("cus_edu")[1]
    february = _period_lines([first, second], "2026-02-01")
    # February's usage, 7 x 0.10, is half price too, on March's invoice.
    calls = next(x for x in february if x["price_id"] == "calls")
    assert (calls["amount"], calls["discount"]) == ("0.70", "0.35")
    whole = engine.quote(plan="basic", customer_id="cus_edu", usage={"api_calls": "7"},
                         period="2026-02-01/2026-03-01")
    by_subscription = engine.quote(subscription_id=sub["id"], period="2026-02-01/2026-03-01")
    assert by_subscription["mid_period_changes"] == 0
    assert _sum(february) == D(whole["total"]) == D(by_subscription["total"])
    for inv in (first, second):  # every invoice is the sum of its lines
        assert _sum(inv["lines"]) == D(inv["total"])
        assert _sum(inv["lines"], "discount") == D(inv["discount"])
        assert _sum(inv["lines"], "tax") == D(inv["tax"])


def test_an_upgrade_under_a_coupon_credits_and_charges_at_the_same_discount(engine: Engine) -> None:
    _customer(engine, "cus_up")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_up", "plan": "basic", "coupon": "HALF"}, status=201)
    engine.advance("2026-02-15T00:00:00Z")  # day 14 of 28: half of February is left
    change = engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "plus"})["document"]
    lines = {(x["price_id"], x["note"]): x for x in engine.get(f"/v1/invoices/{change['id']}")["lines"]}
    # Unused Basic: 30.00 and 10.00 x 14/28, given back as they were charged: at half price.
    assert (lines[("base", "credit:basic")]["amount"], lines[("base", "credit:basic")]["discount"]) == (
        "-15.00", "-7.50")
    assert (lines[("seats", "credit:basic")]["amount"], lines[("seats", "credit:basic")]["discount"]) == (
        "-5.00", "-2.50")
    # Remaining Plus: 60.00 and 12.00 x 14/28, at half price.
    assert (lines[("base", "charge:plus")]["amount"], lines[("base", "charge:plus")]["discount"]) == ("30.00", "15.00")
    expected = sum((_net_with_tax(D(a), D(50)) for a in ("30.00", "6.00")), D(0)) - sum(
        (_net_with_tax(D(a), D(50)) for a in ("15.00", "5.00")), D(0))
    assert D(change["total"]) == expected == D("9.51")
    assert _sum(list(lines.values())) == D(change["total"])


def test_an_upgrade_under_a_twenty_percent_coupon(engine: Engine) -> None:
    _customer(engine, "cus_20")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_20", "plan": "basic", "coupon": "TWENTY"},
                      status=201)
    engine.advance("2026-02-15T00:00:00Z")
    change = engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "plus"})["document"]
    # (36.00 - 20.00) x 80 % = 12.80 before tax; each line rounded once.
    assert D(change["subtotal"]) - D(change["discount"]) == D("12.80")


def test_cancel_now_under_a_coupon_credits_what_was_paid_for_the_unused_days(engine: Engine) -> None:
    _customer(engine, "cus_cancel")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_cancel", "plan": "basic", "coupon": "HALF"},
                      status=201)
    engine.advance("2026-02-15T00:00:00Z")
    note = engine.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at": "now"})["document"]
    assert note["type"] == "credit_note"
    # 14 of 28 days of 40.00 at half price, 19 % tax per line: 7.50 + 1.43, 2.50 + 0.48.
    assert D(note["total"]) == _net_with_tax(D("15.00"), D(50)) + _net_with_tax(D("5.00"), D(50)) == D("11.91")


def test_an_amount_off_is_taken_once_per_period_even_across_an_upgrade(engine: Engine) -> None:
    _customer(engine, "cus_ten")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_ten", "plan": "basic", "coupon": "TEN"}, status=201)
    engine.advance("2026-02-15T00:00:00Z")
    engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "plus"})
    engine.advance("2026-03-01T00:00:00Z")
    february = _period_lines(engine.invoices("cus_ten"), "2026-02-01")
    # 40.00 for the first half, 72.00 for the second, 10.00 off February once.
    assert _sum(february, "amount") == D("20.00") + D("36.00") + D("0.00")
    assert _sum(february, "discount") == D("10.00")


def test_late_usage_under_a_minimum_bills_only_what_the_minimum_does_not_cover(engine: Engine) -> None:
    _customer(engine, "cus_min")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_min", "plan": "committed"}, status=201)
    _calls(engine, "cus_min", 1521, "2026-02-10T10:00:00Z")  # 76.05: with 20.00, 3.95 short of 100.00
    engine.advance("2026-03-01T00:00:00Z")
    march = engine.invoices("cus_min")[1]
    true_up = next(x for x in march["lines"] if x["price_id"] == "minimum_commitment")
    assert true_up["amount"] == "3.95"
    _calls(engine, "cus_min", 1, "2026-02-20T10:00:00Z", prefix="late")  # arrives after February was billed
    engine.advance("2026-04-01T00:00:00Z")
    april = engine.invoices("cus_min")[2]
    late = [x for x in april["lines"] if x["kind"] == "adjustment"]
    # The late call (0.05) fills the minimum: the true-up shrinks by as much; nothing more is owed.
    assert sorted((x["price_id"], x["amount"]) for x in late) == [("calls", "0.05"), ("minimum_commitment", "-0.05")]
    february = _period_lines(engine.invoices("cus_min"), "2026-02-01")
    assert _sum(february, "amount") == D("100.00")
    quote = engine.quote(subscription_id=sub["id"], period="2026-02-01/2026-03-01")
    assert _sum(february) == D(quote["total"])


def test_a_subscription_quote_refuses_inputs_it_takes_from_the_subscription(engine: Engine) -> None:
    _customer(engine, "cus_q")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_q", "plan": "basic"}, status=201)
    r = engine.product.post("/v1/quotes", json={"subscription_id": sub["id"], "quantity": "3"})
    assert r.status_code == 422 and r.json()["field"] == "quantity"
    r = engine.product.post("/v1/quotes", json={"subscription_id": "sub_nope"})
    assert r.status_code == 404 and r.json()["field"] == "subscription_id"
    r = engine.product.post("/v1/quotes", json={})
    assert r.status_code == 422 and r.json()["field"] == "plan"
