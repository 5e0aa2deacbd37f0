"""Progressive billing over HTTP on the shared test clock (issue 20), ending with the ledger
checker: a plan that bills usage early at 20.00, 50.00, then every 40.00 of accrued usage
charges. Hand-computed for a DE customer (19 % VAT, half_up per line), calls priced in
graduated tiers across the whole period: 0.50 each up to 100, 0.25 above.

| calls | accrued | level | invoice: calls, tax, total |
|---|---|---|---|
| 30 | 15.00 | 0 | none |
| 45 | 22.50 | 1 (20.00) | 22.50, 4.28 (4.275), 26.78 |
| 45 again (same ids) | - | - | none: a redelivered event is a duplicate |
| 120 | 55.00 | 2 (50.00) | 32.50, 10.45 - 4.28 = 6.17, 38.67 |
| 121 (one dated earlier) | 55.25 | 2 | none |
| 260 | 90.00 | 3 (90.00) | 90.00 - 55.00 = 35.00, 17.10 - 10.45 = 6.65, 41.65 |

The period's quote: platform 10.00 + 1.90, calls 90.00 + 17.10 = 119.00, 107.10 of it
invoiced early. The close bills calls 90.00 / 17.10 and deducts 90.00 / 17.10 (what the three
progressive invoices billed), with the next period's platform fee: 11.90. An event of the
closed period that arrives after the close: 261 calls, 90.25 + 17.15 (17.1475): a late-usage
invoice of 0.25 + 0.05 = 0.30.
"""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.journeys.harness import Engine, money
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal

CATALOG = """\
catalog: progressive-{tag}
currency: USD
taxes: {{DE: 19}}
metrics:
  calls: {{event: progressive.call, aggregation: count}}
plans:
  early-{tag}:
    name: Billed early
    interval: month
    prices:
      - {{id: base, name: Platform, model: flat, amount: "10.00"}}
      - id: calls
        name: API calls
        model: graduated
        metric: calls
        tiers:
          - {{up_to: 100, unit_amount: "0.50"}}
          - {{up_to: null, unit_amount: "0.25"}}
    progressive_billing: {{thresholds: ["20.00", "50.00"], then_every: "40.00"}}
"""


def _publish(engine: Engine, tmp_path: Path) -> str:
    tag = secrets.token_hex(3)
    path = tmp_path / "progressive.yaml"
    path.write_text(CATALOG.format(tag=tag))
    engine.publish(path)
    return f"early-{tag}"


def _calls(engine: Engine, cid: str, ids: range, at: str | None = None) -> dict[str, Any]:
    body = [{"id": f"evt_{cid}_{i}", "type": "progressive.call", "customer_id": cid, "time": at or engine.now(),
             "properties": {}} for i in ids]
    r = engine.product.post("/v1/events", json=body)
    assert r.status_code == 202, r.text
    engine.settle()  # the usage.recorded of the batch is applied (the threshold check)
    return r.json()  # type: ignore[no-any-return]


def _progressive(engine: Engine, cid: str) -> list[tuple[Decimal, Decimal, Decimal]]:
    return [(money(i["subtotal"]), money(i["tax"]), money(i["total"]))
            for i in engine.invoices(cid) if i["reason"] == "progressive"]


def _period_total(invoices: list[dict[str, Any]], start: str) -> Decimal:
    return sum((money(x["total"]) for i in invoices for x in i["lines"]
                if x["period"] and x["period"]["start"][:10] == start), D(0))


def test_progressive_invoices_at_each_threshold_and_a_close_that_deducts_them(engine: Engine,
                                                                               tmp_path: Path) -> None:
    plan = _publish(engine, tmp_path)
    cid = engine.customer("progressive")
    t0 = engine.now()
    sub = engine.subscribe(cid, plan, payment_method=card(CARD_OK))
    start = sub["current_period"]["start"][:10]
    _calls(engine, cid, range(0, 30))
    assert _progressive(engine, cid) == []
    _calls(engine, cid, range(30, 45))
    assert _progressive(engine, cid) == [(D("22.50"), D("4.28"), D("26.78"))]
    # The same 15 events again (a client's retry): duplicates, no usage, no second invoice.
    assert _calls(engine, cid, range(30, 45)) == {"received": 15, "accepted": 0, "duplicates": 15}
    assert len(_progressive(engine, cid)) == 1
    _calls(engine, cid, range(45, 120))
    _calls(engine, cid, range(120, 121), at=t0)  # dated before the invoices it arrives after
    _calls(engine, cid, range(121, 260))
    assert _progressive(engine, cid) == [(D("22.50"), D("4.28"), D("26.78")), (D("32.50"), D("6.17"), D("38.67")),
                                         (D("35.00"), D("6.65"), D("41.65"))]
    engine.advance("1h")  # collected like any invoice: by card
    early = [i for i in engine.invoices(cid) if i["reason"] == "progressive"]
    assert all(i["status"] == "paid" for i in early)
    assert sorted(money(c["amount"]) for c in engine.charges(cid)) == sorted(
        [D("11.90"), D("26.78"), D("38.67"), D("41.65")])
    quote = engine.quote(subscription_id=sub["id"])
    assert (money(quote["total"]), money(quote["progressively_invoiced"])) == (D("119.00"), D("107.10"))
    assert sorted(quote["progressive_invoices"]) == sorted(i["id"] for i in early)

    engine.advance("32d")  # the close: the whole period's calls, less what was invoiced early
    close = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert [(x["price_id"], x["kind"], x["amount"], x["tax"]) for x in close["lines"]] == [
        ("base", "charge", "10.00", "1.90"), ("calls", "charge", "90.00", "17.10"),
        ("calls", "progressive_deduction", "-90.00", "-17.10")]
    assert "already invoiced progressively" in close["lines"][2]["name"]
    assert money(close["total"]) == D("11.90")
    assert _period_total(engine.invoices(cid), start) == D("119.00")  # = the quote of the period

    # An event of the closed period arrives after its close: billed as late usage next day.
    _calls(engine, cid, range(260, 261), at=t0)
    engine.advance("2d")
    [late] = [i for i in engine.invoices(cid) if i["reason"] == "late"]
    assert (money(late["subtotal"]), money(late["tax"]), money(late["total"])) == (D("0.25"), D("0.05"), D("0.30"))
    assert _period_total(engine.invoices(cid), start) == money(
        engine.quote(subscription_id=sub["id"], period=f"{start}/{close['period']['start'][:10]}")["total"]) == D("119.30")


def _open_period_total(invoices: list[dict[str, Any]], start: str) -> Decimal:
    """What the period's invoices that stand (not void) billed of it."""
    return _period_total([i for i in invoices if i["status"] != "void"], start)


def _void(engine: Engine, invoice: dict[str, Any]) -> None:
    assert invoice["status"] == "finalized", invoice["status"]  # open: nothing paid yet
    assert engine.post(f"/v1/invoices/{invoice['id']}/void")["status"] == "void"


def _journal_of(engine: Engine, invoice_id: str) -> dict[str, Decimal]:
    """What the journal's entries naming the invoice leave on each account (debit - credit)."""
    from tests.journeys.test_books_journey import balances, journal

    start = date.fromisoformat(engine.now()[:10]) - timedelta(days=40)
    entries = journal(engine, start, {invoice_id})
    assert entries, invoice_id
    for entry_id, rows in entries.items():
        assert sum(money(r["debit"]) for r in rows) == sum(money(r["credit"]) for r in rows), entry_id
    return balances(entries)


def test_a_voided_progressive_invoice_is_billed_again_and_not_deducted(engine: Engine, tmp_path: Path) -> None:
    """Void the level-1 invoice (45 calls: 22.50 + 4.28 = 26.78): the quote counts nothing
    invoiced early, and the next call (46: accrued 23.00, level 1 again) invoices 23.00 + 4.37
    = 27.37. Level 2 (120 calls, 55.00) invoices 55.00 - 23.00 = 32.00 + (10.45 - 4.37 = 6.08)
    = 38.08; void it too. The close bills calls 55.00 / 10.45 and deducts only the invoice that
    stands: -23.00 / -4.37, with the next platform fee 11.90: 49.98. The period: 11.90 + 27.37
    + (55.00 + 10.45 - 23.00 - 4.37 = 38.08) = 77.35 = its quote (10.00 + 1.90 + 55.00 + 10.45).
    A card attached after the voids pays the opening fee and the invoice that stands, then the
    close. Each voided invoice's journal entries reverse it: receivables and tax back to nothing, its
    revenue offset by credit_notes."""
    plan = _publish(engine, tmp_path)
    cid = engine.customer("progressive_void")
    sub = engine.subscribe(cid, plan)  # no card yet: the invoices stay open, so they can be voided
    start = sub["current_period"]["start"][:10]
    _calls(engine, cid, range(0, 45))
    [first] = [i for i in engine.invoices(cid) if i["reason"] == "progressive"]
    _void(engine, first)
    quote = engine.quote(subscription_id=sub["id"])
    assert "progressively_invoiced" not in quote and "progressive_invoices" not in quote  # nothing invoiced early

    _calls(engine, cid, range(45, 46))  # level 1 is reached again: invoiced again
    assert _progressive(engine, cid) == [(D("22.50"), D("4.28"), D("26.78")), (D("23.00"), D("4.37"), D("27.37"))]
    _calls(engine, cid, range(46, 120))
    again, second = [i for i in engine.invoices(cid) if i["reason"] == "progressive"][1:]
    assert (money(second["subtotal"]), money(second["tax"]), money(second["total"])) == (
        D("32.00"), D("6.08"), D("38.08"))
    _void(engine, second)  # no more usage: the close bills it
    quote = engine.quote(subscription_id=sub["id"])
    assert (money(quote["progressively_invoiced"]), quote["progressive_invoices"]) == (D("27.37"), [again["id"]])

    # A card now: the open invoices are collected, the one that stands, not the voided ones.
    engine.post(f"/v1/customers/{cid}/payment_methods", card(CARD_OK), status=201)
    engine.advance("1h")
    assert sorted(money(c["amount"]) for c in engine.charges(cid)) == [D("11.90"), D("27.37")]
    engine.advance("32d")  # the close deducts only what stands
    close = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert [(x["price_id"], x["kind"], x["amount"], x["tax"]) for x in close["lines"]] == [
        ("base", "charge", "10.00", "1.90"), ("calls", "charge", "55.00", "10.45"),
        ("calls", "progressive_deduction", "-23.00", "-4.37")]
    assert money(close["total"]) == D("49.98")
    assert _open_period_total(engine.invoices(cid), start) == money(quote["total"]) == D("77.35")
    for voided in (first, second):
        revenue = next(k for k in _journal_of(engine, voided["id"]) if k.startswith("revenue:"))
        assert _journal_of(engine, voided["id"]) == {revenue: -money(voided["subtotal"]),
                                                     "credit_notes": money(voided["subtotal"])}
