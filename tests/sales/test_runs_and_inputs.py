"""Racing billing runs, crashes mid-run, catalog versions, bad input, payments, HTML."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from engine.clock import TestClock
from engine.sales import (
    Conflict,
    NotFound,
    SalesError,
    advance_clock,
    cancel_subscription,
    create_customer,
    create_subscription,
    current_usage,
    get_invoice,
    handle_payment_succeeded,
    ingest_events,
    invoicing,
    list_customers,
    list_invoices,
    migrate_subscriptions,
    preview_migration,
    publish_catalog,
    reactivate_subscription,
    render_invoice_html,
    run_due_billing,
)
from engine.sales.models import CatalogVersion, Invoice, InvoiceLine, Subscription, UsageRecord
from engine.store import Database, OutboxEvent
from tests.sales.conftest import at, event, invoices, make_testco


def _customers(db: Database, clock: TestClock, n: int, plan: str = "plus") -> list[str]:
    ids = []
    with db.session() as s:
        for i in range(n):
            create_customer(s, {"id": f"c{i}", "name": f"C {i}"}, clock=clock)
            ids.append(create_subscription(s, f"c{i}", plan, clock=clock, trial_days=0)["id"])
    return ids


def _count(db: Database, model: type) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_racing_billing_runs_issue_one_invoice_each(published: Database, clock: TestClock) -> None:
    db = published
    subs = _customers(db, clock, 30)
    clock.set(at(2026, 2, 1))
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        try:
            barrier.wait()
            run_due_billing(db, clock, batch_size=7)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.session() as s:
        keys = s.execute(select(Invoice.subscription_id, Invoice.billing_key)).all()
        numbers = sorted(s.scalars(select(Invoice.number)))
    assert sorted(keys) == sorted(
        [(sid, "period:2026-01-01") for sid in subs] + [(sid, "period:2026-02-01") for sid in subs]
    )
    assert numbers == [f"INV-2026-{n:06d}" for n in range(1, 61)]


def test_a_crash_mid_run_leaves_no_partial_invoice(
    published: Database, clock: TestClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = published
    subs = _customers(db, clock, 5)
    clock.set(at(2026, 2, 1))
    real = invoicing._write_lines
    calls = {"n": 0}

    def exploding(session, rows):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if rows and rows[0]["subscription_id"] == subs[2]:
            raise RuntimeError("disk on fire")
        real(session, rows)

    monkeypatch.setattr(invoicing, "_write_lines", exploding)
    report = run_due_billing(db, clock)
    # The broken subscription fails alone; the others are invoiced.
    assert [sid for sid, _ in report.failures] == [subs[2]]
    with db.session() as s:
        billed = set(s.scalars(select(Invoice.subscription_id).where(Invoice.billing_key == "period:2026-02-01")))
        orphans = s.scalar(
            select(func.count()).select_from(Invoice).where(~Invoice.id.in_(select(InvoiceLine.invoice_id)))
        )
        sub = s.get(Subscription, subs[2])
        assert sub is not None and sub.period_start.isoformat() == "2026-01-01"  # state unchanged
    assert billed == set(subs) - {subs[2]}
    assert orphans == 0

    # A crash that kills the whole run (not an Exception) rolls the open batch back whole.
    def interrupted(session, rows):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(invoicing, "_write_lines", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_due_billing(db, clock)
    assert _count(db, Invoice) == 9
    # Repaired, the next run bills it, and the numbers have no gap.
    monkeypatch.setattr(invoicing, "_write_lines", real)
    run_due_billing(db, clock)
    with db.session() as s:
        numbers = sorted(s.scalars(select(Invoice.number)))
    assert numbers == [f"INV-2026-{n:06d}" for n in range(1, 11)]


def test_catalog_versions_grandfathering_and_migration(published: Database, clock: TestClock) -> None:
    db = published
    with db.session() as s:
        create_customer(s, {"id": "old", "name": "Old"}, clock=clock)
        create_customer(s, {"id": "new", "name": "New"}, clock=clock)
        old_sub = create_subscription(s, "old", "plus", clock=clock, quantity=1)["id"]
        # The same content again is not a new version.
        again = publish_catalog(s, make_testco(), "tester", "no change", clock=clock)
        assert (again.version, again.created) == (1, False)
        v2 = publish_catalog(s, make_testco(**{'amount: "60.00"': 'amount: "65.00"'}), "pm", "price rise", clock=clock)
        assert (v2.version, v2.created) == (2, True)
        new_sub = create_subscription(s, "new", "plus", clock=clock, quantity=1)
    assert new_sub["document"]["total"] == "77.00"  # 65 + 12 on version 2
    with db.session() as s:
        row = s.scalars(select(CatalogVersion).where(CatalogVersion.version == 2)).one()
        assert (row.author, row.comment, len(row.checksum)) == ("pm", "price rise", 64)
        preview = preview_migration(s, "testco")
    assert [(p["subscription_id"], p["old_amount"], p["new_amount"], p["effective"]) for p in preview] == [
        (old_sub, "72.00", "77.00", "2026-02-01")
    ]
    # Grandfathered until migrated: February still at version 1's price.
    advance_clock(db, clock, to=at(2026, 2, 1))
    assert invoices(db, old_sub)[1]["total"] == "72.00"
    with db.session() as s:
        done = migrate_subscriptions(s, "testco", 2, clock=clock)
    assert [d["effective"] for d in done] == ["2026-03-01"]
    advance_clock(db, clock, to=at(2026, 3, 1))
    assert invoices(db, old_sub)[2]["total"] == "77.00"


def test_publishing_a_plan_id_of_another_catalog_is_refused(published: Database, clock: TestClock) -> None:
    other = make_testco(**{"catalog: testco": "catalog: other"})
    with pytest.raises(Conflict) as info, published.session() as s:
        publish_catalog(s, other, "pm", clock=clock)
    assert info.value.field == "plans.basic"
    assert _count(published, CatalogVersion) == 1


def test_bad_input_names_the_field_and_writes_nothing(published: Database, clock: TestClock) -> None:
    db = published
    with db.session() as s:
        create_customer(s, {"id": "c1", "name": "A"}, clock=clock)
    before = (_count(db, Subscription), _count(db, UsageRecord), _count(db, OutboxEvent), _count(db, Invoice))
    cases = [
        (lambda s: create_subscription(s, "nobody", "plus", clock=clock), "customer_id"),
        (lambda s: create_subscription(s, "c1", "platinum", clock=clock), "plan"),
        (lambda s: create_subscription(s, "c1", "plus", clock=clock, quantity=-1), "quantity"),
        (lambda s: create_subscription(s, "c1", "plus", clock=clock, quantity=1.5), "quantity"),
        (lambda s: create_subscription(s, "c1", "plus", clock=clock, catalog_version=9), "catalog_version"),
        (lambda s: create_subscription(s, "c1", "plus", clock=clock, coupon="NOPE"), "coupon"),
        (
            lambda s: ingest_events(
                s,
                [
                    event(1, "c1", "2026-01-02T00:00:00Z"),
                    {"type": "api.request", "customer_id": "c1", "time": "2026-01-02T00:00:00Z"},
                ],
                clock=clock,
            ),
            "events[1].id",
        ),
        (
            lambda s: ingest_events(s, [{"id": "x", "customer_id": "c1", "time": "2026-01-02T00:00:00Z"}], clock=clock),
            "events[0].type",
        ),
        (lambda s: ingest_events(s, [event(2, "c1", "2026-01-02T00:00:00")], clock=clock), "events[0].time"),
        (lambda s: ingest_events(s, [event(3, "ghost", "2026-01-02T00:00:00Z")], clock=clock), "events[0].customer_id"),
        (lambda s: create_customer(s, {"id": "c1", "name": "dup"}, clock=clock), "id"),
        (lambda s: create_customer(s, {"name": "x", "country": "Germany"}, clock=clock), "country"),
        (lambda s: create_customer(s, {"name": "x", "email": "nope"}, clock=clock), "email"),
    ]
    for call, field in cases:
        with pytest.raises(SalesError) as info, db.session() as s:
            call(s)
        assert isinstance(info.value, ValueError)
        assert info.value.field == field, (field, str(info.value))
    after = (_count(db, Subscription), _count(db, UsageRecord), _count(db, OutboxEvent), _count(db, Invoice))
    assert after == before


def test_concurrent_ingestion_of_the_same_ids_stores_each_once(published: Database, clock: TestClock) -> None:
    db = published
    with db.session() as s:
        create_customer(s, {"id": "c1", "name": "A"}, clock=clock)
    batch = [event(i, "c1", "2026-01-02T00:00:00Z") for i in range(300)]
    results = []
    barrier = threading.Barrier(4)

    def ingest() -> None:
        barrier.wait()
        with db.session() as s:
            results.append(ingest_events(s, batch, clock=clock))

    threads = [threading.Thread(target=ingest) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _count(db, UsageRecord) == 300
    assert sum(r.accepted for r in results) == 300
    assert sum(r.duplicates for r in results) == 900


def test_payment_succeeded_marks_the_invoice_paid_once(published: Database, clock: TestClock) -> None:
    db = published
    with db.session() as s:
        create_customer(s, {"id": "c1", "name": "A"}, clock=clock)
        sub = create_subscription(s, "c1", "plus", clock=clock, trial_days=0)
    inv_id = sub["document"]["id"]
    envelope = {
        "id": "evt_pay_1",
        "type": "payment.succeeded",
        "customer_id": "c1",
        "time": "2026-01-02T10:00:00Z",
        "properties": {"invoice_id": inv_id, "amount": "72.00", "currency": "USD", "payment_id": "pay_1"},
    }
    with db.session() as s:
        assert handle_payment_succeeded(s, envelope) is True
    with db.session() as s:
        assert handle_payment_succeeded(s, envelope) is False  # redelivered: no second effect
        inv = get_invoice(s, inv_id)
        paid_events = s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "invoice.paid"))
    assert (inv["status"], inv["amount_paid"], len(inv["payments"]), paid_events) == ("paid", "72.00", 1, 1)


def test_reads_usage_html_and_reactivation(published: Database, clock: TestClock) -> None:
    db = published
    with db.session() as s:
        create_customer(s, {"id": "c1", "name": "<script>alert(1)</script>", "country": "DE"}, clock=clock)
        sid = create_subscription(s, "c1", "plus", clock=clock, trial_days=0)["id"]
        ingest_events(s, [event(i, "c1", "2026-01-02T00:00:00Z") for i in range(4)], clock=clock)
        usage = current_usage(s, "c1", "api_calls", clock.now())
        page = list_invoices(s, "c1")
        listed = list_customers(s, per_page=10)
        html = render_invoice_html(s, page["items"][0]["id"])
        cancel_subscription(s, sid, clock=clock, at="period_end")
        reactivate_subscription(s, sid, clock=clock)
    assert usage["quantity"] == Decimal(4) and usage["period"] == {"start": "2026-01-01", "end": "2026-02-01"}
    assert page["total"] == 1 and page["items"][0]["number"] == "INV-2026-000001"
    assert (listed["total"], [c["id"] for c in listed["items"]]) == (1, ["c1"])
    assert "INV-2026-000001" in html and "85.68" in html  # 72.00 + 19% VAT
    assert "<script>" not in html and "&lt;script&gt;" in html
    advance_clock(db, clock, to=at(2026, 2, 1))
    assert len(invoices(db, sid)) == 2  # reactivated: it renews
    with pytest.raises(NotFound), db.session() as s:
        current_usage(s, "c1", "gpu", clock.now())
