"""`cancel_subscriptions` and `mark_uncollectible_many` (what the dunning sweep uses) leave
exactly what `cancel_subscription` and `mark_uncollectible` one after the other leave: the
same subscriptions, invoices and lines, credit notes, numbers, credit balances and outbox
events, on SQLite and PostgreSQL. A bad item makes the bulk call write nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import engine.models  # noqa: F401  (every table on the metadata)
from engine.clock import TestClock
from engine.sales import (
    Cancellation,
    SalesError,
    cancel_subscription,
    cancel_subscriptions,
    create_customer,
    create_subscription,
    ingest_events,
    mark_invoice_paid,
    mark_uncollectible,
    mark_uncollectible_many,
    subscription_invoices,
)
from engine.store import Base, Database
from tests.sales.conftest import at, event

TABLES = ("sales_subscriptions", "sales_invoices", "sales_invoice_lines", "sales_credit_notes",
          "sales_customers", "sales_counters", "outbox_events")


def _world(db: Database, clock: TestClock) -> tuple[list[Cancellation], list[str]]:
    """Customers and subscriptions whose cancellations cover every case: an invoice with
    usage and tax, credit notes, a trial, a cancellation at period end, a customer whose
    credit note pays part of her next invoice, a minimum commitment, a zero invoice."""
    subs: dict[str, str] = {}
    with db.session() as s:
        for cid, country in (("c1", "DE"), ("c2", "CH"), ("c3", None), ("c4", None), ("c5", "DE"),
                             ("c6", None), ("c7", None)):
            create_customer(s, {"id": cid, "name": cid, "email": f"{cid}@example.com",
                                "country": country}, clock=clock)
        plans: list[tuple[str, str, str, dict[str, Any]]] = [
            ("s1", "c1", "basic", {"quantity": 2, "trial_days": 0}), ("s2", "c2", "plus", {"trial_days": 0}),
            ("s3", "c3", "basic", {}), ("s4", "c4", "plus", {"trial_days": 0}), ("s5a", "c5", "annual", {}),
            ("s5b", "c5", "basic", {"trial_days": 0}), ("s6", "c6", "committed", {}),
            ("s7", "c7", "basic", {"trial_days": 0})]
        for key, cid, plan, kw in plans:
            subs[key] = create_subscription(s, cid, plan, clock=clock, **kw)["id"]
        ingest_events(s, [event(f"a{i}", "c1", "2026-01-05T10:00:00Z") for i in range(500)]
                      + [event(f"b{i}", "c5", "2026-01-06T10:00:00Z") for i in range(900)]
                      + [event(f"c{i}", "c6", "2026-01-06T10:00:00Z") for i in range(30)], clock=clock)
        opened = [subscription_invoices(s, subs[k])[0]["id"] for k in ("s1", "s2", "s4", "s6")]
        # c5 paid her annual plan: its cancellation's credit goes to her balance (an unpaid
        # period's credit goes against its open invoice instead, as s1's, s2's and s6's do).
        mark_invoice_paid(s, subscription_invoices(s, subs["s5a"])[0]["id"], clock=clock)
    items = [Cancellation(subs["s1"]), Cancellation(subs["s2"]), Cancellation(subs["s3"]),
             Cancellation(subs["s4"], at="period_end"), Cancellation(subs["s5a"]),
             Cancellation(subs["s5b"]), Cancellation(subs["s6"]),
             Cancellation(subs["s7"], prorate=False)]
    return items, opened


def _snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables these calls write, generated ids replaced by what names the
    document (subscription and billing key, credit note number), in a stable order."""
    session.flush()
    names: dict[str, str] = {}
    for iid, sid, key in session.execute(sa.text("SELECT id, subscription_id, billing_key FROM sales_invoices")):
        names[iid] = f"invoice:{sid}:{key}"
    for nid, number in session.execute(sa.text("SELECT id, number FROM sales_credit_notes")):
        names[nid] = f"credit_note:{number}"

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, str) and value in names:
            return names[value]
        return value

    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in TABLES:
        rows = session.execute(sa.select(Base.metadata.tables[table])).mappings().all()
        if table == "outbox_events":  # in the order they are published
            rows = sorted(rows, key=lambda r: r["seq"])
            out[table] = [(r["type"], r["customer_id"], r["time"], plain(r["properties"])) for r in rows]
        else:
            out[table] = sorted((tuple((k, plain(v)) for k, v in r.items() if k != "id") for r in rows), key=repr)
    return out


def _normalized(results: list[dict[str, Any]], session: Session) -> list[Any]:
    """The calls' results, document ids replaced as in `_snapshot`."""
    docs = {}
    for iid, sid, key in session.execute(sa.text("SELECT id, subscription_id, billing_key FROM sales_invoices")):
        docs[iid] = f"{sid}:{key}"
    for nid, number in session.execute(sa.text("SELECT id, number FROM sales_credit_notes")):
        docs[nid] = number
    out = []
    for r in results:
        r = dict(r)
        if r.get("document"):
            doc = r["document"]
            r["document"] = {**doc, "id": docs[doc["id"]], "invoice_id": docs.get(doc.get("invoice_id") or "")}
        if "id" in r and r["id"] in docs:
            r["id"] = docs[r["id"]]
        out.append(r)
    return out


def _count_statements(db: Database) -> list[str]:
    seen: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


@pytest.mark.parametrize("when", [at(2026, 1, 10, 12), at(2026, 2, 3, 9)],
                         ids=["within-the-period", "periods-to-close-first"])
def test_bulk_cancellation_leaves_what_one_at_a_time_leaves(
        published: Database, clock: TestClock, when: datetime) -> None:
    db = published
    items, opened = _world(db, clock)
    clock.set(when)

    with db.session() as s:  # the reference, rolled back
        one = [cancel_subscription(s, i.subscription_id, clock=clock, at=i.at, prorate=i.prorate) for i in items]
        one += [mark_uncollectible(s, iid, clock=clock) for iid in opened]
        expected, expected_results = _snapshot(s), _normalized(one, s)
        s.rollback()

    statements = _count_statements(db)
    with db.session() as s:
        many = cancel_subscriptions(s, items, clock=clock) + mark_uncollectible_many(s, opened, clock=clock)
        s.flush()
        written = len(statements)
        got, got_results = _snapshot(s), _normalized(many, s)

    assert got == expected
    assert got_results == expected_results
    # Worth checking that the case is the one meant: documents of every kind, credit applied.
    events = [e[0] for e in expected["outbox_events"]]
    assert {"invoice.finalized", "invoice.paid", "credit_note.issued", "subscription.canceled",
            "invoice.uncollectible"} <= set(events)
    if when.month == 1:
        assert any(r[0] == "invoice.finalized" and r[3]["credit_applied"] != "0.00" for r in expected["outbox_events"])
        if db.is_postgres:  # where it runs at scale (SQLite inserts outbox rows one by one)
            # Set-based: 24 statements for 8 cancellations and 4 invoices, not ~15 each (one of
            # them reads the periods' ledger, one writes it; one reads the periods' invoices,
            # one takes the credit off the open ones).
            assert written <= 24, "\n".join(x[:150] for x in statements)
    else:
        assert "subscription.renewed" in events  # the periods closed first, then the cancellations


def test_a_bad_item_fails_the_whole_call_and_writes_nothing(published: Database, clock: TestClock) -> None:
    db = published
    items, opened = _world(db, clock)
    clock.set(at(2026, 1, 10, 12))
    with db.session() as s:
        cancel_subscription(s, items[1].subscription_id, clock=clock, at="now")
        mark_invoice_paid(s, opened[2], clock=clock)
    bad_calls: list[tuple[str, Any]] = [
        ("subscription_id", lambda s: cancel_subscriptions(s, [*items[:1], Cancellation(items[1].subscription_id)],
                                                           clock=clock)),  # already cancelled
        ("subscription_id", lambda s: cancel_subscriptions(s, [*items[:3], Cancellation("sub_nope")], clock=clock)),
        ("items[1].at", lambda s: cancel_subscriptions(s, [items[0], Cancellation(items[2].subscription_id,
                                                                                  at="tomorrow")], clock=clock)),
        ("items", lambda s: cancel_subscriptions(s, [items[0], items[2], items[0]], clock=clock)),
        ("status", lambda s: mark_uncollectible_many(s, opened, clock=clock)),  # one is paid
        ("invoice_id", lambda s: mark_uncollectible_many(s, [opened[0], "in_nope"], clock=clock)),
    ]
    for field, call in bad_calls:
        with db.session() as s:
            before = _snapshot(s)
            with pytest.raises(SalesError) as raised:
                call(s)
            assert raised.value.field == field
            assert _snapshot(s) == before, field  # nothing written, even in the open transaction
