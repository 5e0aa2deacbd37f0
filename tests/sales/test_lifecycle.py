"""Subscription lifecycles on the test clock, with every amount worked out by hand."""

from __future__ import annotations

from sqlalchemy import select

from engine.clock import TestClock
from engine.sales import (
    advance_clock,
    cancel_subscription,
    change_subscription,
    create_customer,
    create_subscription,
    get_subscription,
    ingest_events,
    list_credit_notes,
)
from engine.sales.models import Invoice
from engine.store import Database, OutboxEvent
from tests.sales.conftest import amounts, at, event, invoices


def _customer(db: Database, clock: TestClock, cid: str = "c1", country: str | None = "DE", **extra: object) -> None:
    with db.session() as s:
        create_customer(
            s, {"id": cid, "name": "Ada", "email": "ada@example.com", "country": country, **extra}, clock=clock
        )


def _events(db: Database, clock: TestClock) -> list[tuple[str, str]]:
    with db.session() as s:
        return [(e.type, e.time.date().isoformat()) for e in s.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))]


def test_trial_upgrade_quantity_downgrade_cancel(published: Database, clock: TestClock) -> None:
    db = published
    _customer(db, clock)
    with db.session() as s:
        sub = create_subscription(s, "c1", "basic", clock=clock, quantity=2)
    sid = sub["id"]
    assert sub["status"] == "trialing" and sub["trial_end"] == "2026-01-15"
    assert sub["document"] is None  # nothing is billed during the trial

    # Trial ends Jan 15: the first period Jan 15 - Feb 15 opens and its in-advance charges
    # are invoiced: 30.00 + 2 x 10.00 = 50.00, DE VAT 19% = 9.50, total 59.50.
    advance_clock(db, clock, to=at(2026, 1, 15))
    [first] = invoices(db, sid)
    assert first["number"] == "INV-2026-000001"
    assert first["period"] == {"start": "2026-01-15", "end": "2026-02-15"}
    assert amounts(first) == [("base", "30.00"), ("seats", "20.00")]
    assert (first["subtotal"], first["tax"], first["total"]) == ("50.00", "9.50", "59.50")
    assert ("subscription.trial_will_end", "2026-01-12") in _events(db, clock)

    # 7 API calls in the first period, billed in arrears at 0.10.
    clock.set(at(2026, 1, 20))
    with db.session() as s:
        ingest_events(s, [event(i, "c1", "2026-01-20T10:00:00Z") for i in range(7)], clock=clock)

    # Feb 15: arrears 7 x 0.10 = 0.70 for Jan 15 - Feb 15, plus 50.00 in advance for
    # Feb 15 - Mar 15. Subtotal 50.70, tax 9.633 -> 9.63, total 60.33.
    advance_clock(db, clock, to=at(2026, 2, 20))
    second = invoices(db, sid)[1]
    assert second["number"] == "INV-2026-000002"
    assert amounts(second) == [("base", "30.00"), ("seats", "20.00"), ("calls", "0.70")]
    assert second["lines"][2]["period"] == {"start": "2026-01-15", "end": "2026-02-15"}
    assert (second["subtotal"], second["tax"], second["total"]) == ("50.70", "9.63", "60.33")

    # Mar 1: upgrade to plus, now. The period Feb 15 - Mar 15 has 28 days, 14 remain:
    # credit -30.00*14/28 = -15.00 and -20.00*14/28 = -10.00; charge 60.00*14/28 = 30.00
    # and 2 x 12.00 * 14/28 = 12.00. Net 17.00, tax 3.23, total 20.23.
    clock.set(at(2026, 3, 1, 9))
    with db.session() as s:
        changed = change_subscription(s, sid, clock=clock, plan="plus")
    assert changed["plan"] == "plus" and changed["document"]["type"] == "invoice"
    third = invoices(db, sid)[2]
    assert amounts(third) == [("base", "-15.00"), ("seats", "-10.00"), ("base", "30.00"), ("seats", "12.00")]
    assert (third["subtotal"], third["tax"], third["total"]) == ("17.00", "3.23", "20.23")
    assert third["number"] == "INV-2026-000003"

    # Mar 8: quantity 2 -> 4, 7 of 28 days remain: base -15.00 / +15.00, seats
    # -24.00*7/28 = -6.00 / +48.00*7/28 = 12.00. Net 6.00, tax 1.14, total 7.14.
    clock.set(at(2026, 3, 8))
    with db.session() as s:
        change_subscription(s, sid, clock=clock, quantity=4)
    fourth = invoices(db, sid)[3]
    assert amounts(fourth) == [("base", "-15.00"), ("seats", "-6.00"), ("base", "15.00"), ("seats", "12.00")]
    assert (fourth["subtotal"], fourth["tax"], fourth["total"]) == ("6.00", "1.14", "7.14")

    # 10 calls on Mar 10, billed at plus's 0.05 = 0.50 when the period closes.
    clock.set(at(2026, 3, 10))
    with db.session() as s:
        ingest_events(s, [event(f"m{i}", "c1", "2026-03-10T08:00:00+01:00") for i in range(10)], clock=clock)

    # Mar 15: 0.50 arrears + plus x 4 in advance: 60.00 + 48.00 = 108.00. Subtotal 108.50,
    # tax 20.615 -> 20.62 (half up), total 129.12.
    advance_clock(db, clock, to=at(2026, 3, 20))
    fifth = invoices(db, sid)[4]
    assert amounts(fifth) == [("base", "60.00"), ("seats", "48.00"), ("calls", "0.50")]
    assert (fifth["subtotal"], fifth["tax"], fifth["total"]) == ("108.50", "20.62", "129.12")

    # Mar 20: downgrade to basic, which costs less per period: it waits for the period end.
    with db.session() as s:
        down = change_subscription(s, sid, clock=clock, plan="basic")
    assert down["plan"] == "plus" and down["pending"]["plan"] == "basic" and down["document"] is None
    assert len(invoices(db, sid)) == 5

    # Apr 15: plus arrears (no usage, 0.00) + basic x 4 in advance: 30.00 + 40.00 = 70.00,
    # tax 13.30, total 83.30.
    advance_clock(db, clock, to=at(2026, 4, 20))
    sixth = invoices(db, sid)[5]
    assert amounts(sixth) == [("base", "30.00"), ("seats", "40.00"), ("calls", "0.00")]
    assert (sixth["subtotal"], sixth["tax"], sixth["total"]) == ("70.00", "13.30", "83.30")
    assert sixth["plan"] == "basic"

    # Apr 20: cancel at period end. May 15 the final invoice bills the last period's usage
    # (none: 0.00) and the subscription ends; nothing is billed after.
    with db.session() as s:
        cancel_subscription(s, sid, clock=clock, at="period_end")
    advance_clock(db, clock, to=at(2026, 7, 1))
    all_invoices = invoices(db, sid)
    assert len(all_invoices) == 7
    final = all_invoices[6]
    assert final["reason"] == "final" and final["total"] == "0.00" and final["status"] == "paid"
    assert final["period"] == {"start": "2026-04-15", "end": "2026-05-15"}
    with db.session() as s:
        assert get_subscription(s, sid)["status"] == "canceled"
    assert [i["number"] for i in all_invoices] == [f"INV-2026-{n:06d}" for n in range(1, 8)]
    types = [t for t, _ in _events(db, clock)]
    for expected in (
        "customer.created",
        "subscription.created",
        "subscription.trial_will_end",
        "subscription.renewed",
        "subscription.changed",
        "subscription.canceled",
        "invoice.finalized",
        "invoice.paid",
    ):
        assert expected in types, expected
    assert types.count("invoice.finalized") == 7


def test_quantity_decrease_issues_a_credit_note_used_by_the_next_invoice(published: Database, clock: TestClock) -> None:
    db = published
    _customer(db, clock, country=None)
    with db.session() as s:
        sid = create_subscription(s, "c1", "plus", clock=clock, quantity=3)["id"]
    # Jan 1 - Feb 1 (31 days): 60 + 36 = 96.00, no tax (no country).
    assert invoices(db, sid)[0]["total"] == "96.00"
    # Jan 22: 3 -> 1 seat, 10 of 31 days remain: base -60*10/31 = -19.35 / +19.35,
    # seats -36*10/31 = -11.61 / +12*10/31 = 3.87: net -7.74 -> a credit note of 7.74.
    clock.set(at(2026, 1, 22))
    with db.session() as s:
        result = change_subscription(s, sid, clock=clock, quantity=1)
    assert result["document"]["type"] == "credit_note"
    assert result["document"]["total"] == "7.74" and result["document"]["number"] == "CN-2026-000001"
    # Feb 1: 60 + 12 = 72.00 in advance; the 7.74 credit is applied: 64.26 due.
    advance_clock(db, clock, to=at(2026, 2, 1))
    feb = invoices(db, sid)[1]
    assert (feb["total"], feb["credit_applied"], feb["amount_due"]) == ("72.00", "7.74", "64.26")
    with db.session() as s:
        assert [c["reason"] for c in list_credit_notes(s, "c1")] == ["proration"]


def test_cancel_now_bills_usage_and_credits_unused_time(published: Database, clock: TestClock) -> None:
    db = published
    _customer(db, clock, country="CH")
    with db.session() as s:
        sid = create_subscription(s, "c1", "plus", clock=clock, quantity=1, trial_days=0)["id"]
        ingest_events(s, [event(i, "c1", "2026-01-03T00:00:00Z") for i in range(40)], clock=clock)
    # Jan 1: 72.00 + CH 8.1% = 5.832 -> 5.83, total 77.83.
    assert invoices(db, sid)[0]["total"] == "77.83"
    # Jan 11: cancel now. Usage 40 x 0.05 = 2.00; 21 of 31 days unused:
    # -60*21/31 = -40.65, -12*21/31 = -8.13. Net -46.78, tax -3.79: credit note 50.57.
    clock.set(at(2026, 1, 11, 12))
    with db.session() as s:
        result = cancel_subscription(s, sid, clock=clock, at="now")
    assert result["status"] == "canceled"
    assert result["document"]["type"] == "credit_note"
    assert (result["document"]["subtotal"], result["document"]["tax"], result["document"]["total"]) == (
        "46.78",
        "3.79",
        "50.57",
    )
    advance_clock(db, clock, by="2mo")
    assert len(invoices(db, sid)) == 1


def test_coupon_and_minimum_commitment(published: Database, clock: TestClock) -> None:
    db = published
    _customer(db, clock, country=None)
    with db.session() as s:
        sid = create_subscription(s, "c1", "committed", clock=clock, coupon="HALF")["id"]
        ingest_events(s, [event(i, "c1", "2026-01-05T00:00:00Z") for i in range(30)], clock=clock)
    # A discount belongs to the period whose charges it reduces, whichever invoice they are on.
    # Jan 1: platform 20.00 for January, 50% off (January is cycle 0 of 2): 10.00.
    first = invoices(db, sid)[0]
    assert (first["subtotal"], first["discount"], first["total"]) == ("20.00", "10.00", "10.00")
    # Feb 1: February's platform 20.00 (cycle 1 of 2: 50% off, 10.00); January's 30 calls x 1.00
    # = 30.00, charged for January 20 + 30 = 50 < 100: true-up 50.00 (January: 50% off, 40.00).
    advance_clock(db, clock, to=at(2026, 2, 1))
    second = invoices(db, sid)[1]
    assert amounts(second) == [("base", "20.00"), ("calls", "30.00"), ("minimum_commitment", "50.00")]
    assert (second["subtotal"], second["discount"], second["total"]) == ("100.00", "50.00", "50.00")
    # Mar 1: March's platform 20.00, the coupon used up (cycle 2): no discount. February had no
    # calls: 0.00 + true-up 80.00, still February's coupon: 50% off, 40.00. Total 60.00.
    advance_clock(db, clock, to=at(2026, 3, 1))
    third = invoices(db, sid)[2]
    assert amounts(third) == [("base", "20.00"), ("calls", "0.00"), ("minimum_commitment", "80.00")]
    assert [(x["price_id"], x["discount"]) for x in third["lines"]] == [
        ("base", "0.00"), ("calls", "0.00"), ("minimum_commitment", "40.00")]
    assert (third["discount"], third["total"]) == ("40.00", "60.00")
    # April 1: March ran without the coupon: its true-up 80.00 is billed in full.
    advance_clock(db, clock, to=at(2026, 4, 1))
    fourth = invoices(db, sid)[3]
    assert (fourth["discount"], fourth["total"]) == ("0.00", "100.00")


def test_reverse_charge_for_b2b_customer(published: Database, clock: TestClock) -> None:
    db = published
    _customer(db, clock, country="DE", tax_id="DE123456789")
    with db.session() as s:
        sub = create_subscription(s, "c1", "plus", clock=clock)
    doc = sub["document"]
    assert (doc["tax"], doc["total"], doc["reverse_charge"]) == ("0.00", "72.00", True)


def test_yearly_plan_across_a_leap_day(published: Database, clock: TestClock) -> None:
    db = published
    clock.set(at(2028, 2, 29, 15))
    _customer(db, clock, country=None)
    with db.session() as s:
        sid = create_subscription(s, "c1", "annual", clock=clock)["id"]
    advance_clock(db, clock, to=at(2030, 3, 1))
    periods = [(i["period"]["start"], i["period"]["end"], i["total"], i["number"]) for i in invoices(db, sid)]
    assert periods == [
        ("2028-02-29", "2029-02-28", "300.00", "INV-2028-000001"),
        ("2029-02-28", "2030-02-28", "300.00", "INV-2029-000001"),
        ("2030-02-28", "2031-02-28", "300.00", "INV-2030-000001"),
    ]


def test_month_end_anchor_across_2028(published: Database, clock: TestClock) -> None:
    db = published
    clock.set(at(2028, 1, 31, 12))
    _customer(db, clock, country=None)
    with db.session() as s:
        sid = create_subscription(s, "c1", "plus", clock=clock)["id"]
    advance_clock(db, clock, to=at(2028, 6, 1))
    periods = [(i["period"]["start"], i["period"]["end"]) for i in invoices(db, sid)]
    assert periods == [
        ("2028-01-31", "2028-02-29"),
        ("2028-02-29", "2028-03-31"),
        ("2028-03-31", "2028-04-30"),
        ("2028-04-30", "2028-05-31"),
        ("2028-05-31", "2028-06-30"),
    ]
    assert {i["total"] for i in invoices(db, sid)} == {"72.00"}


def test_one_time_purchase_invoices_at_once(published: Database, clock: TestClock) -> None:
    db = published
    _customer(db, clock, country="CH")
    with db.session() as s:
        sub = create_subscription(s, "c1", "ebook", clock=clock)
    # 19.99 + CH 8.1% = 1.61919 -> 1.62: 21.61.
    assert sub["status"] == "completed"
    assert (sub["document"]["subtotal"], sub["document"]["tax"], sub["document"]["total"]) == ("19.99", "1.62", "21.61")
    advance_clock(db, clock, by="3mo")
    assert len(invoices(db, sub["id"])) == 1


def test_late_usage_is_billed_the_next_day_as_an_adjustment(published: Database, clock: TestClock) -> None:
    db = published
    _customer(db, clock, country=None)
    with db.session() as s:
        sid = create_subscription(s, "c1", "basic", clock=clock, trial_days=0)["id"]
        ingest_events(s, [event(i, "c1", "2026-01-10T00:00:00Z") for i in range(5)], clock=clock)
    advance_clock(db, clock, to=at(2026, 2, 5, 9))
    assert amounts(invoices(db, sid)[1]) == [("base", "30.00"), ("seats", "10.00"), ("calls", "0.50")]
    # Feb 5: three January events arrive late (January was invoiced), two February ones on time.
    late = [event(f"late{i}", "c1", "2026-01-20T00:00:00Z") for i in range(3)]
    on_time = [event(f"feb{i}", "c1", "2026-02-10T00:00:00Z") for i in range(2)]
    with db.session() as s:
        result = ingest_events(s, late + on_time, clock=clock)
        assert (result.accepted, result.duplicates) == (5, 0)
        again = ingest_events(s, late, clock=clock)  # a retry: no second effect
        assert (again.accepted, again.duplicates) == (0, 3)
        ingest_events(s, [event("late3", "c1", "2026-01-21T00:00:00Z")], clock=clock)  # later the same day
    advance_clock(db, clock, to=at(2026, 2, 6))
    # The first billing run of the next day: January's 4 late calls, 4 x 0.10 = 0.40, on one
    # adjustment invoice of their own (a day's late batches together).
    adjustment = invoices(db, sid)[2]
    assert adjustment["reason"] == "late" and adjustment["issued_at"] == "2026-02-06T00:00:00+00:00"
    assert amounts(adjustment) == [("calls", "0.40")]
    [line] = adjustment["lines"]
    assert line["kind"] == "adjustment" and line["quantity"] == "4"
    assert line["period"] == {"start": "2026-01-01", "end": "2026-02-01"}
    assert "2026-01-01/2026-02-01" in line["note"]
    # Late usage due with a renewal goes on the renewal invoice: one invoice, not two.
    advance_clock(db, clock, to=at(2026, 2, 28, 12))
    with db.session() as s:
        ingest_events(s, [event(f"late-feb{i}", "c1", "2026-01-25T00:00:00Z") for i in range(2)], clock=clock)
    advance_clock(db, clock, to=at(2026, 3, 1))
    march = invoices(db, sid)[3]
    # February usage 2 x 0.10 = 0.20; January's 2 late calls 0.20 as an adjustment.
    assert amounts(march) == [("base", "30.00"), ("seats", "10.00"), ("calls", "0.20"), ("calls", "0.20")]
    assert march["lines"][3]["kind"] == "adjustment" and march["total"] == "40.40"
    # Nothing is billed twice: April has no adjustment, and no other invoice came.
    advance_clock(db, clock, to=at(2026, 4, 1))
    assert len(invoices(db, sid)) == 5
    assert [line["kind"] for line in invoices(db, sid)[4]["lines"]] == ["charge", "charge", "charge"]


def test_invoice_unique_per_subscription_and_period(published: Database, clock: TestClock) -> None:
    import pytest
    from sqlalchemy.exc import IntegrityError

    db = published
    _customer(db, clock, country=None)
    with db.session() as s:
        sid = create_subscription(s, "c1", "plus", clock=clock)["id"]
    with pytest.raises(IntegrityError), db.session() as s:
        original = s.scalars(select(Invoice).where(Invoice.subscription_id == sid)).one()
        s.add(
            Invoice(
                id="in_dup",
                customer_id="c1",
                subscription_id=sid,
                billing_key=original.billing_key,
                reason="cycle",
                status="draft",
                currency="USD",
                subtotal=original.subtotal,
                discount=original.discount,
                tax=original.tax,
                total=original.total,
                amount_due=original.total,
                created_at=clock.now(),
            )
        )
        s.flush()


def test_usage_arriving_as_its_period_closes_is_billed_once(published: Database, clock: TestClock) -> None:
    """An event ingested when its period's close is due but before the billing run made it
    (on PostgreSQL the two may run at once) is marked as possibly late: the close bills it,
    and the next day's run finds nothing more to bill."""
    db = published
    _customer(db, clock, country=None)
    with db.session() as s:
        sid = create_subscription(s, "c1", "basic", clock=clock, trial_days=0)["id"]
    clock.set(at(2026, 2, 1, 0, 0, 5))  # the close is due, the run has not come yet
    with db.session() as s:
        ingest_events(s, [event("edge", "c1", "2026-01-31T23:59:00Z")], clock=clock)
        assert get_subscription(s, sid)["late_usage_due_at"] == "2026-02-02T00:00:00+00:00"
    advance_clock(db, clock, to=at(2026, 2, 3))
    assert len(invoices(db, sid)) == 2
    assert amounts(invoices(db, sid)[1]) == [("base", "30.00"), ("seats", "10.00"), ("calls", "0.10")]
    with db.session() as s:
        assert get_subscription(s, sid)["late_usage_due_at"] is None
