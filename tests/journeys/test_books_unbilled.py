"""Unbilled revenue in the books (issue 21), over HTTP on the shared test clock, ending with
the ledger checker: usage earned in a month and invoiced in arrears the next is accrued by the
month's close (Dr `unbilled_revenue` / Cr revenue) and reversed by the next month's close, the
month it was invoiced in; the revenue report shows the same figure as negative deferred.

Hand figures: 30 calls at 0.10 = 3.00 of usage in month M, invoiced on the 1st of M+1 with the
next 5.00 fee."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.journeys.harness import Engine, money
from tests.journeys.test_books_journey import advance_to, share, when
from tests.journeys.test_journeys import CARD_OK, card
from tests.journeys.test_progressive import _calls, _progressive
from tests.journeys.test_progressive import _publish as _publish_progressive

D = Decimal

CATALOG = """\
catalog: books-unbilled-{tag}
currency: USD
taxes: {{DE: 19}}
metrics:
  calls: {{event: api.request, aggregation: count}}
plans:
  meter-{tag}:
    name: Meter
    interval: month
    prices:
      - {{id: base, name: Meter fee, model: flat, amount: "5.00"}}
      - id: calls
        name: Calls
        model: graduated
        metric: calls
        tiers:
          - {{up_to: null, unit_amount: "0.10"}}
"""


def _moves(closed: dict[str, Any], account: str) -> list[tuple[Decimal, Decimal]]:
    """(debit, credit) of `account` in the close's USD entries (the accrual and the deferral)."""
    [usd] = [e for e in closed["entries"] if e["currency"] == "USD"]
    return [(money(p["debit"]), money(p["credit"])) for p in usd["postings"] if p["account"] == account]


def test_usage_earned_before_it_is_invoiced_is_accrued_then_reversed(engine: Engine, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    path = tmp_path / "books-unbilled.yaml"
    path.write_text(CATALOG.format(tag=tag))
    engine.publish(path)
    plan = f"meter-{tag}"
    usage = f"revenue:{plan}:usage"
    month = (when(engine).date().replace(day=1) + timedelta(days=32)).replace(day=1)
    following = (month + timedelta(days=32)).replace(day=1)
    after = (following + timedelta(days=32)).replace(day=1)
    advance_to(engine, month)
    cid = engine.customer("books_unbilled")
    engine.subscribe(cid, plan, payment_method=card(CARD_OK))
    engine.advance("1h")
    advance_to(engine, month + timedelta(days=10))
    engine.usage(cid, 30)
    advance_to(engine, following, hour=3)  # the renewal: M's 3.00 of usage and the next 5.00
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert sorted(money(x["amount"]) for x in renewal["lines"]) == [D("3.00"), D("5.00")]

    # M's close accrues the 3.00 earned in M and invoiced after it: Cr revenue, Dr unbilled.
    closed = engine.post("/v1/books/close", {"month": month.isoformat()[:7]})
    assert _moves(closed, usage) == [(D("0.00"), D("3.00"))]
    # The report says the same: M earned 8.00 of 5.00 billed, 3.00 earned ahead of its invoice.
    r = engine.admin.get("/v1/books/revenue", params={"from": month.isoformat()[:7], "to": following.isoformat()[:7],
                                                       "customer_id": cid})
    assert r.status_code == 200, r.text
    assert [(x["month"], money(x["billed"]), money(x["recognised"]), money(x["deferred"]))
            for x in r.json()["items"]] == [(month.isoformat()[:7], D("5.00"), D("8.00"), D("-3.00")),
                                            (following.isoformat()[:7], D("8.00"), D("5.00"), D("0.00"))]

    # M+1's close reverses it: the invoice booked the 3.00 as revenue in M+1, where it was not earned.
    advance_to(engine, after, hour=3)
    closed = engine.post("/v1/books/close", {"month": following.isoformat()[:7]})
    assert _moves(closed, usage) == [(D("3.00"), D("0.00"))]
    # M's accrual is dated M's last second, through the shipped chart on Assets:UnbilledRevenue.
    rows = engine.admin.get("/v1/books/journal", params={"from": (following - timedelta(days=1)).isoformat(),
                                                          "to": following.isoformat()})
    assert rows.status_code == 200, rows.text
    accruals = [line for line in rows.text.splitlines() if line.startswith("unbilled:") and "unbilled_revenue" in line]
    assert accruals and all("Assets:UnbilledRevenue" in line for line in accruals)


def test_usage_of_a_period_not_invoiced_yet_is_accrued_at_the_close(engine: Engine, tmp_path: Path) -> None:
    """Meter from the 16th of M: its period [16 M, 16 M+1) is still open when M is closed on the
    1st of M+1. 30 calls by the 20th of M (3.00 at 0.10, priced by the invoice's pricing
    function) are accrued by M's close over HTTP: Dr unbilled_revenue / Cr revenue usage 3.00;
    10 more calls on the 1st of M+1 are not M's. The report for M earns them: the fee's share
    5.00 x (days of M from the 16th) / (days of M), half-even, plus 3.00; billed 5.00. The
    renewal on the 16th of M+1 invoices 4.00 of usage (40 calls) and 5.00: its own rows replace
    the accrual in the report (M earns its share of 4.00 by day), and M+1's close reverses the
    3.00 (Dr revenue usage / Cr unbilled). A close of a month not ended: 409 on `month`."""
    tag = secrets.token_hex(3)
    path = tmp_path / "books-unbilled.yaml"
    path.write_text(CATALOG.format(tag=tag))
    engine.publish(path)
    plan = f"meter-{tag}"
    usage = f"revenue:{plan}:usage"
    month = (when(engine).date().replace(day=1) + timedelta(days=32)).replace(day=1)
    following = (month + timedelta(days=32)).replace(day=1)
    after = (following + timedelta(days=32)).replace(day=1)
    days = (following - month).days
    in_month = days - 15  # the 16th to the month's end
    advance_to(engine, month + timedelta(days=15))
    cid = engine.customer("books_accrued")
    engine.subscribe(cid, plan, payment_method=card(CARD_OK))
    engine.advance("1h")
    advance_to(engine, month + timedelta(days=19))
    engine.usage(cid, 30)
    advance_to(engine, following, hour=3)
    engine.usage(cid, 10)
    assert [i["reason"] for i in engine.invoices(cid)] == ["start"]  # nothing invoiced of the usage yet

    r = engine.admin.post("/v1/books/close", json={"month": following.isoformat()[:7]})
    assert r.status_code == 409 and r.json()["field"] == "month", r.text
    closed = engine.post("/v1/books/close", {"month": month.isoformat()[:7]})
    [usd] = [e for e in closed["entries"] if e["currency"] == "USD"]
    accrual = sorted((p["account"], money(p["debit"]), money(p["credit"])) for p in usd["postings"]
                     if p["account"] in (usage, "unbilled_revenue"))
    assert accrual == [(usage, D("0.00"), D("3.00")), ("unbilled_revenue", D("3.00"), D("0.00"))], usd["postings"]
    fee = share(D("5.00"), in_month, days)
    assert _report(engine, cid, month, month) == [(month.isoformat()[:7], D("5.00"), fee + D("3.00"),
                                                   D("5.00") - fee - D("3.00"))]
    again = engine.post("/v1/books/close", {"month": month.isoformat()[:7]})
    assert again["entries"] == closed["entries"]  # closing again posts nothing more

    advance_to(engine, following + timedelta(days=15), hour=3)  # the renewal: 4.00 of usage, 5.00
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert sorted(money(x["amount"]) for x in renewal["lines"]) == [D("4.00"), D("5.00")]
    assert _report(engine, cid, month, month)[0][2] == fee + share(D("4.00"), in_month, days)
    advance_to(engine, after, hour=3)
    closed = engine.post("/v1/books/close", {"month": following.isoformat()[:7]})
    assert _moves(closed, usage) == [(D("3.00"), D("0.00"))]


def _report(engine: Engine, cid: str, first: date, last: date) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    r = engine.admin.get("/v1/books/revenue", params={"from": first.isoformat()[:7], "to": last.isoformat()[:7],
                                                       "customer_id": cid})
    assert r.status_code == 200, r.text
    return [(x["month"], money(x["billed"]), money(x["recognised"]), money(x["deferred"])) for x in r.json()["items"]]


def test_usage_invoiced_early_by_a_progressive_invoice_is_not_accrued_again(engine: Engine, tmp_path: Path) -> None:
    """A plan billing its usage early at 20.00 (tests/journeys/test_progressive.py's catalog:
    calls 0.50 each up to 100, platform 10.00), subscribed on the 16th of M: 45 calls on the
    20th reach 22.50 and a progressive invoice bills them; 10 more calls (27.50 so far) stay
    below the next level, 50.00. M's close accrues only what is not invoiced: 27.50 - 22.50 =
    5.00 (Dr unbilled_revenue / Cr revenue usage), not 27.50 again. Its revrec entry defers the
    part of the 22.50 earned after M (the invoice's usage line runs over the whole period, by
    day). The report for M: billed 32.50, recognised the fee's and the early invoice's shares
    of M plus the 5.00. The renewal on the 16th of M+1 bills 27.50 and deducts 22.50; M+1's
    close reverses the 5.00."""
    plan = _publish_progressive(engine, tmp_path)
    usage = f"revenue:{plan}:usage"
    month = (when(engine).date().replace(day=1) + timedelta(days=32)).replace(day=1)
    following = (month + timedelta(days=32)).replace(day=1)
    after = (following + timedelta(days=32)).replace(day=1)
    days = (following - month).days
    in_month = days - 15  # the 16th to the month's end
    advance_to(engine, month + timedelta(days=15))
    cid = engine.customer("books_progressive")
    engine.subscribe(cid, plan, payment_method=card(CARD_OK))
    engine.advance("1h")
    advance_to(engine, month + timedelta(days=19))
    _calls(engine, cid, range(0, 45))
    advance_to(engine, month + timedelta(days=20))
    _calls(engine, cid, range(45, 55))
    advance_to(engine, following, hour=3)
    assert _progressive(engine, cid) == [(D("22.50"), D("4.28"), D("26.78"))]

    closed = engine.post("/v1/books/close", {"month": month.isoformat()[:7]})
    assert _moves(closed, "unbilled_revenue") == [(D("5.00"), D("0.00"))]
    later = D("22.50") - share(D("22.50"), in_month, days)  # the early invoice's days after M
    assert sorted(_moves(closed, usage)) == sorted([(later, D("0.00")), (D("0.00"), D("5.00"))])
    fee, early = share(D("10.00"), in_month, days), share(D("22.50"), in_month, days)
    assert _report(engine, cid, month, month) == [
        (month.isoformat()[:7], D("32.50"), fee + early + D("5.00"), D("32.50") - fee - early - D("5.00"))
    ]

    advance_to(engine, following + timedelta(days=15), hour=3)  # the renewal: 27.50 less 22.50
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert sorted((x["kind"], money(x["amount"])) for x in renewal["lines"] if x["price_id"] == "calls") == [
        ("charge", D("27.50")),
        ("progressive_deduction", D("-22.50")),
    ]
    advance_to(engine, after, hour=3)
    closed = engine.post("/v1/books/close", {"month": following.isoformat()[:7]})
    assert _moves(closed, "unbilled_revenue") == [(D("0.00"), D("5.00"))]
