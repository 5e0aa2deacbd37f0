"""Progressive billing in sales: interim invoices at each threshold, idempotent under a
redelivered usage.recorded, a close that deducts them, late usage after them; every amount
worked out by hand (DE VAT 19 %, half_up per line)."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from engine.clock import TestClock
from engine.periods import Period
from engine.sales import (
    advance_clock,
    cancel_subscription,
    create_customer,
    create_subscription,
    handle_usage_recorded,
    ingest_events,
    publish_catalog,
    quote_subscription,
    void_invoice,
)
from engine.sales.models import Invoice
from engine.store import Database, OutboxEvent
from tests.sales.conftest import D, at, event, invoices, make_testco

METERED = """
  metered:
    name: Metered
    interval: month
    prices:
      - {id: base, name: Platform, model: flat, amount: "10.00"}
      - id: calls
        name: API calls
        model: graduated
        metric: api_calls
        tiers:
          - {up_to: 100, unit_amount: "0.50"}
          - {up_to: null, unit_amount: "0.25"}
    progressive_billing: {thresholds: ["20.00", "50.00"], then_every: "40.00"}
"""


def _setup(db: Database, clock: TestClock) -> str:
    catalog = make_testco(**{"  ebook:": METERED + "  ebook:"})
    with db.session() as s:
        publish_catalog(s, catalog, "tester", "v1", clock=clock)
        create_customer(s, {"id": "c1", "name": "Ada", "email": "ada@example.com", "country": "DE"}, clock=clock)
        sub = create_subscription(s, "c1", "metered", clock=clock)
    return str(sub["id"])


_n = iter(range(10_000))


def _use(db: Database, clock: TestClock, n: int, when: str) -> dict[str, Any]:
    """Ingest n calls at `when` and run the sales handler on the batch's usage.recorded."""
    with db.session() as s:
        result = ingest_events(s, [event(f"p{next(_n)}", "c1", when) for _ in range(n)], clock=clock)
    return _recorded(db, result.recorded_event_id)


def _recorded(db: Database, event_id: str | None) -> dict[str, Any]:
    with db.session() as s:
        row = s.scalars(select(OutboxEvent).where(OutboxEvent.id == event_id)).one()
        envelope = {"id": row.id, "type": row.type, "customer_id": row.customer_id,
                    "time": row.time.isoformat(), "properties": row.properties}
    deliver(db, envelope)
    return envelope


def deliver(db: Database, envelope: dict[str, Any]) -> list[str]:
    with db.session() as s:
        return handle_usage_recorded(s, envelope)


def _progressive(db: Database, sid: str) -> list[dict[str, Any]]:
    return [i for i in invoices(db, sid) if i["reason"] == "progressive"]


def _figures(inv: dict[str, Any]) -> tuple[str, str, str]:
    return inv["subtotal"], inv["tax"], inv["total"]


def test_thresholds_invoice_once_each_and_the_close_deducts_them(published: Database, clock: TestClock) -> None:
    db = published
    clock.set(at(2026, 1, 1))
    sid = _setup(db, clock)
    clock.set(at(2026, 1, 5))
    # 30 calls: 15.00 accrued, under the first threshold (20.00): nothing.
    _use(db, clock, 30, "2026-01-05T10:00:00Z")
    assert _progressive(db, sid) == []
    # 45 calls: 22.50 reaches 20.00: calls 22.50, tax 4.275 -> 4.28, total 26.78.
    envelope = _use(db, clock, 15, "2026-01-05T11:00:00Z")
    [first] = _progressive(db, sid)
    assert _figures(first) == ("22.50", "4.28", "26.78")
    assert first["period"] == {"start": "2026-01-01", "end": "2026-02-01"}
    # The same usage.recorded delivered again (a redelivery, a second worker): no second invoice.
    assert deliver(db, envelope) == []
    assert len(_progressive(db, sid)) == 1
    # 120 calls: 100 x 0.50 + 20 x 0.25 = 55.00 reaches 50.00. Billed: 55.00 - 22.50 = 32.50;
    # tax round(10.45) - 4.28 = 6.17; total 38.67.
    clock.set(at(2026, 1, 10))
    _use(db, clock, 75, "2026-01-10T10:00:00Z")
    # 260 calls: 50.00 + 160 x 0.25 = 90.00 reaches 50 + 40 = 90.00 (level 3): 35.00, tax
    # round(17.10) - 10.45 = 6.65, total 41.65.
    clock.set(at(2026, 1, 20))
    _use(db, clock, 140, "2026-01-20T10:00:00Z")
    assert [_figures(i) for i in _progressive(db, sid)] == [
        ("22.50", "4.28", "26.78"), ("32.50", "6.17", "38.67"), ("35.00", "6.65", "41.65")]
    with db.session() as s:
        keys = sorted(s.scalars(select(Invoice.billing_key).where(Invoice.reason == "progressive")))
    assert keys == ["progressive:2026-01-01:1", "progressive:2026-01-01:2", "progressive:2026-01-01:3"]
    # The quote of the period: 10.00 + 1.90 + 90.00 + 17.10 = 119.00, 107.10 of it billed early.
    with db.session() as s:
        q = quote_subscription(s, sid)
    assert (q.document.total, q.progressively_invoiced, len(q.progressive_invoices)) == (D("119.00"), D("107.10"), 3)

    # Feb 1: the close bills the whole period's calls (90.00, tax 17.10) and deducts what the
    # progressive invoices billed, then the new period's platform fee 10.00 + 1.90.
    advance_clock(db, clock, to=at(2026, 2, 1))
    cycle = [i for i in invoices(db, sid) if i["reason"] == "cycle"][-1]
    lines = [(x["price_id"], x["kind"], x["amount"], x["tax"]) for x in cycle["lines"]]
    assert lines == [("base", "charge", "10.00", "1.90"), ("calls", "charge", "90.00", "17.10"),
                     ("calls", "progressive_deduction", "-90.00", "-17.10")]
    assert "already invoiced progressively" in cycle["lines"][2]["name"]
    assert cycle["total"] == "11.90"
    assert _period_total(db, sid, "2026-01-01") == D("119.00")  # what the quote of January said


def _period_total(db: Database, sid: str, start: str) -> Decimal:
    """What every invoice's lines bill of the period starting `start` (the ledger checker's sum)."""
    return sum((D(x["amount"]) - D(x["discount"]) + D(x["tax"]) for i in invoices(db, sid) for x in i["lines"]
                if x["period"] and x["period"]["start"] == start), D("0"))


def test_cancel_now_after_a_progressive_invoice_deducts_it(published: Database, clock: TestClock) -> None:
    """Cancelled now on Jan 16 (prorate=False: the platform fee is kept) after one progressive
    invoice: the final invoice bills the calls so far (60: 30.00, tax 5.70) and deducts the
    progressive invoice's 22.50 / 4.28: 7.50 + 1.42 = 8.92. January: 11.90 + 26.78 + 8.92 =
    47.60 = 10.00 + 1.90 + 30.00 + 5.70, what its quote says."""
    db = published
    clock.set(at(2026, 1, 1))
    sid = _setup(db, clock)
    clock.set(at(2026, 1, 5))
    _use(db, clock, 45, "2026-01-05T10:00:00Z")
    _use(db, clock, 15, "2026-01-06T10:00:00Z")  # 30.00: under 50.00
    assert [_figures(i) for i in _progressive(db, sid)] == [("22.50", "4.28", "26.78")]
    clock.set(at(2026, 1, 16))
    with db.session() as s:
        cancel_subscription(s, sid, clock=clock, at="now", prorate=False)
    final = [i for i in invoices(db, sid) if i["reason"] == "cancel"][-1]
    assert [(x["kind"], x["amount"], x["tax"]) for x in final["lines"]] == [
        ("charge", "30.00", "5.70"), ("progressive_deduction", "-22.50", "-4.28")]
    assert final["total"] == "8.92"
    with db.session() as s:
        quote = quote_subscription(s, sid, period=Period(date(2026, 1, 1), date(2026, 2, 1))).document.total
    assert _period_total(db, sid, "2026-01-01") == quote == D("47.60")


def test_two_workers_at_once_issue_one_invoice(published: Database, clock: TestClock) -> None:
    """The same usage.recorded handled by two workers at the same moment: the subscription row
    lock and the unique billing key leave one invoice for the level."""
    db = published
    clock.set(at(2026, 1, 1))
    sid = _setup(db, clock)
    clock.set(at(2026, 1, 5))
    with db.session() as s:
        recorded = ingest_events(s, [event(f"w{i}", "c1", "2026-01-05T10:00:00Z") for i in range(45)],
                                 clock=clock).recorded_event_id
    with db.session() as s:
        row = s.scalars(select(OutboxEvent).where(OutboxEvent.id == recorded)).one()
        envelope = {"id": row.id, "type": row.type, "customer_id": row.customer_id, "time": row.time.isoformat(),
                    "properties": row.properties}
    barrier = threading.Barrier(2)
    issued: list[list[str]] = []
    errors: list[Exception] = []

    def worker() -> None:
        barrier.wait()
        try:
            issued.append(deliver(db, envelope))
        except Exception as exc:  # a loser on the unique key would be retried by the bus
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(_progressive(db, sid)) == 1
    # The lock serializes them: the second finds the level invoiced (no error to retry).
    assert errors == [] and sorted(len(x) for x in issued) == [0, 1]
    assert deliver(db, envelope) == []  # the retry of a loser finds the level invoiced
    assert len(_progressive(db, sid)) == 1


def test_a_voided_progressive_invoice_is_not_deducted_and_its_level_invoices_again(
        published: Database, clock: TestClock) -> None:
    """45 calls invoice level 1 (22.50 + 4.28 = 26.78); voided. A redelivered usage.recorded
    finds level 1 reached and nothing standing for it: one new invoice (26.78, key `:1:2`), and
    a second redelivery nothing. That one voided too, the close bills the calls (22.50 / 4.28)
    with no deduction: January's standing invoices, 11.90 + 26.78, are its quote, 38.68."""
    db = published
    clock.set(at(2026, 1, 1))
    sid = _setup(db, clock)
    clock.set(at(2026, 1, 5))
    envelope = _use(db, clock, 45, "2026-01-05T10:00:00Z")
    [first] = _progressive(db, sid)
    with db.session() as s:
        void_invoice(s, first["id"], clock=clock)
        assert quote_subscription(s, sid).progressively_invoiced == D("0")
    [again] = deliver(db, envelope)
    assert deliver(db, envelope) == []
    assert [(_figures(i), i["status"]) for i in _progressive(db, sid)] == [
        (("22.50", "4.28", "26.78"), "void"), (("22.50", "4.28", "26.78"), "finalized")]
    with db.session() as s:
        keys = sorted(s.scalars(select(Invoice.billing_key).where(Invoice.reason == "progressive")))
        assert keys == ["progressive:2026-01-01:1", "progressive:2026-01-01:1:2"]
        assert quote_subscription(s, sid).progressive_invoices == (again,)
        void_invoice(s, again, clock=clock)
    advance_clock(db, clock, to=at(2026, 2, 1))
    cycle = [i for i in invoices(db, sid) if i["reason"] == "cycle"][-1]
    assert [(x["price_id"], x["kind"], x["amount"], x["tax"]) for x in cycle["lines"]] == [
        ("base", "charge", "10.00", "1.90"), ("calls", "charge", "22.50", "4.28")]
    standing = [i for i in invoices(db, sid) if i["status"] != "void"]
    total = sum((D(x["amount"]) - D(x["discount"]) + D(x["tax"]) for i in standing for x in i["lines"]
                 if x["period"] and x["period"]["start"] == "2026-01-01"), D("0"))
    with db.session() as s:
        quote = quote_subscription(s, sid, period=Period(date(2026, 1, 1), date(2026, 2, 1))).document.total
    assert total == quote == D("38.68")
