"""One price everywhere for periods with changes in them, over HTTP on a test clock (issue 15):
the quote of a period in which the plan or the quantity changed replays the period's history
(the pieces its documents billed), so it equals, cent for cent, what the invoices and credit
notes of that period say; and a minimum commitment is owed for the days each plan was held."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
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
from tests.api.test_one_price import PROMOTIONS, Engine

D = Decimal

CATALOG = """
catalog: changes
currency: EUR
rounding: half_up
taxes: {DE: 19}
metrics:
  api_calls: {event: api.request, aggregation: count}
coupons:
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
    upgrade_to: [committed_plus]
    prices:
      - {id: base, name: Platform, model: flat, amount: "20.00"}
      - {id: calls, name: API calls, model: per_unit, metric: api_calls, unit_amount: "0.05"}
  committed_plus:
    name: Committed Plus
    interval: month
    minimum_amount: "200.00"
    prices:
      - {id: base, name: Platform Plus, model: flat, amount: "40.00"}
      - {id: calls, name: API calls, model: per_unit, metric: api_calls, unit_amount: "0.04"}
  basic_year:
    name: Basic yearly
    interval: year
    prices:
      - {id: base, name: Basic yearly fee, model: flat, amount: "300.00"}
      - {id: calls, name: API calls, model: per_unit, metric: api_calls, unit_amount: "0.08"}
  starter:
    name: Starter
    interval: month
    prices:
      - {id: base, name: Starter, model: flat, amount: "10.00"}
"""

FEBRUARY = "2026-02-01/2026-03-01"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    system = build_system(Settings(database_url=f"sqlite:///{tmp_path}/c.db", test_clock="2026-02-01T00:00:00Z"))
    rules = tmp_path / "promotions.yaml"
    rules.write_text(PROMOTIONS)
    with system.db.session() as s:
        sales.publish_catalog(s, load_catalog_text(CATALOG, "changes.yaml"), "test", clock=system.clock)
        publish_ruleset(s, rules, "test", clock=system.clock)
        _, admin = create_key(s, "admin", now=system.clock.now())
        _, product = create_key(s, "product", now=system.clock.now())
    system.sync_rules()
    stop = threading.Event()
    system.start_workers(stop)
    server, thread, url = start_server(system)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as a, httpx.Client(
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


def _period_total(documents: list[dict[str, Any]], period: str, key: str = "total") -> Decimal:
    """What the documents (invoices +, credit notes -) say of one period, from their lines."""
    out = D(0)
    for doc in documents:
        sign = -1 if doc.get("type") == "credit_note" else 1
        for line in doc["lines"]:
            p = line.get("period")  # {start, end} on an invoice, "start/end" on a credit note
            if isinstance(p, dict):
                p = f"{p['start'][:10]}/{p['end'][:10]}"
            if p == period:
                figure = D(line["amount"]) - D(line["discount"]) + D(line["tax"]) if key == "total" else D(line[key])
                out += sign * figure
    return out


def _documents(engine: Engine, customer: str, notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return engine.invoices(customer) + [{**n, "type": "credit_note"} for n in notes]


def test_a_period_with_a_seat_change_and_an_upgrade_equals_its_quote(engine: Engine) -> None:
    _customer(engine, "cus_mix", segment="edu")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_mix", "plan": "basic", "quantity": 3,
                                            "coupon": "TWENTY"}, status=201)
    notes: list[dict[str, Any]] = []
    _calls(engine, "cus_mix", 30, "2026-02-05T10:00:00Z")
    engine.advance("2026-02-08T00:00:00Z")
    fewer = engine.post(f"/v1/subscriptions/{sub['id']}/change", {"quantity": 1})["document"]
    assert fewer["type"] == "credit_note"  # two seats for 21 of 28 days given back
    notes.append(fewer)
    engine.advance("2026-02-15T00:00:00Z")
    upgrade = engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "plus", "quantity": 2})["document"]
    assert upgrade["type"] == "invoice"
    _calls(engine, "cus_mix", 10, "2026-02-20T10:00:00Z", prefix="b")
    engine.advance("2026-03-01T00:00:00Z")
    _calls(engine, "cus_mix", 5, "2026-02-25T10:00:00Z", prefix="late")  # after February was invoiced
    engine.advance("2026-04-01T00:00:00Z")

    quote = engine.quote(subscription_id=sub["id"], period=FEBRUARY)
    documents = _documents(engine, "cus_mix", notes)
    assert quote["mid_period_changes"] == 2
    for key in ("total", "amount", "discount", "tax"):
        figure = "subtotal" if key == "amount" else key
        assert _period_total(documents, FEBRUARY, key) == D(quote[figure]), key
    # The quote shows the pieces it replayed: Basic x3 from the 1st, x1 from the 8th, Plus x2
    # from the 15th (each change gives back the unused days of the terms before it).
    held = [(p["plan"], p["quantity"], p["from"], p["until"]) for p in quote["pieces"]
            if p["part"] == "advance" and not p["credit"]]
    assert held == [("basic", "3", "2026-02-01", "2026-03-01"), ("basic", "1", "2026-02-08", "2026-03-01"),
                    ("plus", "2", "2026-02-15", "2026-03-01")]
    usage = [p for p in quote["pieces"] if p["part"] == "arrears"]
    assert [(p["plan"], p["quantity"]) for p in usage] == [("plus", "2")]
    assert sum((D(p["total"]) for p in quote["pieces"]), D(0)) == D(quote["total"])
    # All 45 calls, the late ones included, on Plus's price: 45 x 0.05.
    calls = [x for x in quote["lines"] if x["price_id"] == "calls"]
    assert [(x["quantity"], x["amount"]) for x in calls] == [("45", "2.25")]


def test_an_amount_off_across_an_upgrade_equals_the_quote(engine: Engine) -> None:
    _customer(engine, "cus_ten")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_ten", "plan": "basic", "coupon": "TEN"}, status=201)
    engine.advance("2026-02-15T00:00:00Z")
    engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "plus"})
    engine.advance("2026-03-01T00:00:00Z")
    quote = engine.quote(subscription_id=sub["id"], period=FEBRUARY)
    assert _period_total(engine.invoices("cus_ten"), FEBRUARY) == D(quote["total"])
    assert D(quote["discount"]) == D("10.00")


def test_the_quote_of_the_current_period_after_an_upgrade_is_what_its_close_will_make_it(engine: Engine) -> None:
    _customer(engine, "cus_now")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_now", "plan": "basic"}, status=201)
    _calls(engine, "cus_now", 20, "2026-02-03T10:00:00Z")
    engine.advance("2026-02-15T00:00:00Z")
    engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "plus"})
    before = engine.quote(subscription_id=sub["id"])  # the current period, still open
    engine.advance("2026-03-01T00:00:00Z")
    assert _period_total(engine.invoices("cus_now"), FEBRUARY) == D(before["total"])
    assert (before["period"]["start"], before["period"]["end"]) == ("2026-02-01", "2026-03-01")


def test_a_minimum_is_owed_for_the_days_each_plan_was_held(engine: Engine) -> None:
    _customer(engine, "cus_min")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_min", "plan": "committed"}, status=201)
    engine.advance("2026-02-15T00:00:00Z")  # 14 of 28 days on Committed (minimum 100.00)
    engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "committed_plus"})  # minimum 200.00
    engine.advance("2026-03-01T00:00:00Z")
    invoices = engine.invoices("cus_min")
    # Half of each minimum: 50.00 + 100.00. Charged: 20.00 - 10.00 + 20.00, no usage.
    assert _period_total(invoices, FEBRUARY, "amount") == D("150.00")
    true_up = [x for inv in invoices for x in inv["lines"] if x["price_id"] == "minimum_commitment"]
    assert [x["amount"] for x in true_up] == ["120.00"]
    quote = engine.quote(subscription_id=sub["id"], period=FEBRUARY)
    assert D(quote["total"]) == _period_total(invoices, FEBRUARY) == D("178.50")


def test_leaving_a_plan_with_a_minimum_mid_period_owes_its_minimum_for_the_days_held(engine: Engine) -> None:
    _customer(engine, "cus_down")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_down", "plan": "committed"}, status=201)
    engine.advance("2026-02-08T00:00:00Z")  # 7 of 28 days on Committed: 25.00 of its minimum
    down = engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "starter", "at": "now"})["document"]
    assert down["type"] == "credit_note"
    engine.advance("2026-03-01T00:00:00Z")
    documents = _documents(engine, "cus_down", [down])
    # Charged: 20.00 - 15.00 (unused Committed) + 7.50 (Starter for 21/28) = 12.50, topped up to 25.00.
    assert _period_total(documents, FEBRUARY, "amount") == D("25.00")
    quote = engine.quote(subscription_id=sub["id"], period=FEBRUARY)
    assert D(quote["total"]) == _period_total(documents, FEBRUARY)


def test_a_change_of_interval_closes_the_month_there_and_each_period_bills_its_own_usage(engine: Engine) -> None:
    _customer(engine, "cus_year")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_year", "plan": "basic"}, status=201)
    _calls(engine, "cus_year", 40, "2026-02-03T10:00:00Z")
    engine.advance("2026-02-08T00:00:00Z")  # 7 of 28 days on Basic, then yearly from the 8th
    yearly = engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "basic_year", "at": "now"})
    assert yearly["current_period"] == {"start": "2026-02-08", "end": "2027-02-08"}
    _calls(engine, "cus_year", 10, "2026-02-10T10:00:00Z", prefix="year")  # the yearly period's
    engine.advance("2026-03-01T00:00:00Z")
    assert yearly["document"]["type"] == "invoice"
    documents = _documents(engine, "cus_year", [])
    # February ran 7 days and its close billed its 40 calls; the calls of the 10th are the
    # yearly period's: February's quote does not count them a second time.
    quote = engine.quote(subscription_id=sub["id"], period=FEBRUARY)
    calls = [(x["quantity"], x["amount"]) for x in quote["lines"] if x["price_id"] == "calls"]
    assert calls == [("40", "4.00")]
    assert D(quote["total"]) == _period_total(documents, FEBRUARY)
    year = engine.quote(subscription_id=sub["id"], period="2026-02-08/2027-02-08")  # open: as it would close
    assert [(x["quantity"], x["amount"]) for x in year["lines"] if x["price_id"] == "calls"] == [("10", "0.80")]


# Late usage of every closed period is billed the day after it arrives, on its own adjustment
# invoice: a cancelled period (it has no next boundary) and a month cut short by a change of
# interval (its next boundary is a year away) alike.


def _late_invoices(engine: Engine, customer: str) -> list[dict[str, Any]]:
    return [inv for inv in engine.invoices(customer) if inv["reason"] == "late"]


def _subscription(engine: Engine, customer: str) -> dict[str, Any]:
    [sub] = engine.get(f"/v1/customers/{customer}")["subscriptions"]
    return sub  # type: ignore[no-any-return]


def test_late_usage_after_a_cancellation_is_billed_the_next_day_against_the_minimum(engine: Engine) -> None:
    _customer(engine, "cus_gone")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_gone", "plan": "committed"}, status=201)
    _calls(engine, "cus_gone", 400, "2026-02-10T10:00:00Z")  # 20.00
    engine.advance("2026-02-15T12:00:00Z")
    engine.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at": "now"})
    # The unused 14/28 of the platform fee back (-10.00), the usage (20.00), and the minimum for
    # the 14 days held (50.00) against the 30.00 charged: a 20.00 true-up.
    cancel = engine.invoices("cus_gone")[-1]
    assert [x["amount"] for x in cancel["lines"] if x["price_id"] == "minimum_commitment"] == ["20.00"]
    engine.advance("2026-02-20T09:00:00Z")
    _calls(engine, "cus_gone", 100, "2026-02-12T10:00:00Z", prefix="late")  # 5.00, dated before the cancellation
    _calls(engine, "cus_gone", 10, "2026-02-16T10:00:00Z", prefix="after")  # after it: no period's
    assert _subscription(engine, "cus_gone")["late_usage_due_at"] == "2026-02-21T00:00:00+00:00"
    engine.advance("2026-02-21T00:00:00Z")
    [first] = _late_invoices(engine, "cus_gone")
    assert first["issued_at"] == "2026-02-21T00:00:00+00:00"
    # The late 5.00 fills the minimum: the true-up shrinks by as much, nothing more is owed.
    assert sorted((x["price_id"], x["amount"]) for x in first["lines"]) == [("calls", "5.00"),
                                                                             ("minimum_commitment", "-5.00")]
    assert all(x["period"] == {"start": "2026-02-01", "end": "2026-03-01"} for x in first["lines"])
    assert first["total"] == "0.00"
    engine.advance("2026-02-22T09:00:00Z")
    _calls(engine, "cus_gone", 1000, "2026-02-13T10:00:00Z", prefix="later")  # 50.00: beyond the minimum
    engine.advance("2026-02-23T00:00:00Z")
    engine.advance("2026-02-23T00:00:00Z")  # the billing run again at the same time: nothing more
    engine.advance("2026-04-01T00:00:00Z")  # nor later
    late = _late_invoices(engine, "cus_gone")
    assert len(late) == 2
    assert sorted((x["price_id"], x["amount"]) for x in late[1]["lines"]) == [("calls", "50.00"),
                                                                               ("minimum_commitment", "-15.00")]
    assert late[1]["total"] == "41.65"  # 35.00 + 19 % VAT
    assert _subscription(engine, "cus_gone")["late_usage_due_at"] is None

    quote = engine.quote(subscription_id=sub["id"], period=FEBRUARY)
    # Every call dated in the 14 days the period ran, the late ones included; not those after.
    assert [(x["quantity"], x["amount"]) for x in quote["lines"] if x["price_id"] == "calls"] == [("1500", "75.00")]
    documents = _documents(engine, "cus_gone", [])
    for key in ("total", "amount", "discount", "tax"):
        figure = "subtotal" if key == "amount" else key
        assert _period_total(documents, FEBRUARY, key) == D(quote[figure]), key
    assert D(quote["total"]) == D("101.15")


def test_late_usage_after_a_cancellation_at_the_period_end_is_billed_the_next_day(engine: Engine) -> None:
    _customer(engine, "cus_end")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_end", "plan": "basic"}, status=201)
    _calls(engine, "cus_end", 10, "2026-02-05T10:00:00Z")
    engine.advance("2026-02-10T00:00:00Z")
    engine.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at": "period_end"})
    engine.advance("2026-03-03T08:00:00Z")  # the final invoice on Mar 1 billed the 10 calls
    assert _subscription(engine, "cus_end")["status"] == "canceled"
    _calls(engine, "cus_end", 7, "2026-02-25T10:00:00Z", prefix="late")
    engine.advance("2026-03-10T00:00:00Z")
    [late] = _late_invoices(engine, "cus_end")
    assert late["issued_at"] == "2026-03-04T00:00:00+00:00"
    assert [(x["price_id"], x["quantity"], x["amount"]) for x in late["lines"]] == [("calls", "7", "0.70")]
    quote = engine.quote(subscription_id=sub["id"], period=FEBRUARY)
    assert _period_total(_documents(engine, "cus_end", []), FEBRUARY) == D(quote["total"])


def test_late_usage_of_a_month_cut_short_by_a_change_of_interval_is_billed_the_next_day(engine: Engine) -> None:
    _customer(engine, "cus_cut")
    sub = engine.post("/v1/subscriptions", {"customer_id": "cus_cut", "plan": "basic"}, status=201)
    _calls(engine, "cus_cut", 40, "2026-02-03T10:00:00Z")
    engine.advance("2026-02-08T00:00:00Z")
    engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "basic_year", "at": "now"})
    engine.advance("2026-02-20T15:00:00Z")
    _calls(engine, "cus_cut", 5, "2026-02-05T10:00:00Z", prefix="late")  # February's, which closed on the 8th
    _calls(engine, "cus_cut", 3, "2026-02-09T10:00:00Z", prefix="year")  # the yearly period's: on time
    engine.advance("2026-02-21T00:00:00Z")  # not a year later, at the yearly period's close
    [late] = _late_invoices(engine, "cus_cut")
    assert late["issued_at"] == "2026-02-21T00:00:00+00:00"
    assert [(x["price_id"], x["quantity"], x["amount"], x["period"]) for x in late["lines"]] == [
        ("calls", "5", "0.50", {"start": "2026-02-01", "end": "2026-03-01"})]
    engine.advance("2026-03-15T00:00:00Z")
    assert len(_late_invoices(engine, "cus_cut")) == 1
    quote = engine.quote(subscription_id=sub["id"], period=FEBRUARY)
    assert [(x["quantity"], x["amount"]) for x in quote["lines"] if x["price_id"] == "calls"] == [("45", "4.50")]
    assert _period_total(_documents(engine, "cus_cut", []), FEBRUARY) == D(quote["total"])
    year = engine.quote(subscription_id=sub["id"], period="2026-02-08/2027-02-08")
    assert [(x["quantity"], x["amount"]) for x in year["lines"] if x["price_id"] == "calls"] == [("3", "0.24")]
