"""Dunning end to end, on a test clock: the sandbox PSP declines the card, rules/dunning.yaml
and rules/notifications.yaml decide everything else, and the emails arrive at a real SMTP
server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from engine import dunning, messaging, payments, sales
from engine.automation import ScheduledJob
from engine.store import OutboxEvent
from engine.system import System
from tests.automation.conftest import FAILING_CARD, GOOD_CARD, START, Inbox, new_customer, payment_service

RETRY = "We will retry the payment for invoice INV-2026-000001 on {}"
FAILED = "Payment for invoice INV-2026-000001 failed"
ISSUED = "Invoice INV-2026-000001 for $20.00"
WARNING = "Action needed: invoice INV-2026-000001 is overdue"
SUSPENDED = "Your account has been suspended"
CANCELLED = "Your Basic subscription has been cancelled"

# What a customer whose card always fails receives, day by day (day 0: the invoice).
EXPECTED_40_DAYS: dict[int, set[str]] = {
    0: {ISSUED, FAILED, RETRY.format("Mar 2, 2026")},
    1: {FAILED, RETRY.format("Mar 4, 2026")},
    3: {FAILED, RETRY.format("Mar 6, 2026")},
    5: {FAILED, RETRY.format("Mar 8, 2026")},
    7: {FAILED, WARNING},  # the fifth attempt; no rule retries after it
    14: {SUSPENDED},
    30: {CANCELLED},
}
EXPECTED_STATE = {0: "active", 6: "active", 7: "warning", 13: "warning", 14: "suspended",
                  29: "suspended", 30: "cancelled", 40: "cancelled"}


def state(system: System, cid: str) -> str:
    with system.db.session() as s:
        return dunning.get_state(s, cid)


def by_day(inbox: Inbox) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for day, subject in inbox.subjects():
        out.setdefault(day, []).append(subject)
    return out


def to_day_end(system: System, day: int) -> None:
    system.advance_to(START + timedelta(days=day, hours=23))


def test_card_failing_for_40_days(engine_system: System, inbox: tuple[Inbox, str]) -> None:
    system, mails = engine_system, inbox[0]
    invoice_id = new_customer(system, "cus_fail", FAILING_CARD)
    assert invoice_id
    states: dict[int, str] = {}
    access: dict[int, Any] = {}
    for day in range(41):
        to_day_end(system, day)
        states[day] = state(system, "cus_fail")
        access[day] = system.access.check("cus_fail", "reports")

    got = by_day(mails)
    assert {d: sorted(v) for d, v in got.items()} == \
        {d: sorted(v) for d, v in EXPECTED_40_DAYS.items()}
    assert sum(len(v) for v in got.values()) == sum(len(v) for v in EXPECTED_40_DAYS.values())
    for day, expected in EXPECTED_STATE.items():
        assert states[day] == expected, day

    # Access follows the state: allowed until suspended, denied while suspended, then gone.
    assert access[13].allowed
    assert not access[14].allowed and access[14].reason == "payment_overdue"
    assert not access[29].allowed and access[29].reason == "payment_overdue"
    assert not access[30].allowed

    # The last step cancelled the subscription and wrote the invoice off.
    with system.db.session() as s:
        assert sales.get_invoice(s, invoice_id)["status"] == "uncollectible"
        subs = sales.list_subscriptions(s, "cus_fail")
        assert [x["status"] for x in subs] == ["canceled"]
        # Retries were on days 1, 3, 5 and 7, each attempt once.
        jobs = s.scalars(select(ScheduledJob).order_by(ScheduledJob.due_at)).all()
        assert [(j.due_at - START).days for j in jobs] == [1, 3, 5, 7]
        assert all(j.status == "done" for j in jobs)

    # Subject and body are the rendered templates, to the customer's address.
    suspended = next(m for m in mails.mails if m.subject == SUSPENDED)
    assert suspended.to == "cus_fail@example.com"
    assert "INV-2026-000001" in suspended.text and "$20.00" in suspended.text
    assert "suspended" in suspended.html
    retry = next(m for m in mails.mails if m.subject == RETRY.format("Mar 4, 2026"))
    assert "attempt 2" in retry.text and "$20.00" in retry.text


def test_successful_retry_stops_the_sequence(engine_system: System, inbox: tuple[Inbox, str]) -> None:
    system, mails = engine_system, inbox[0]
    invoice_id = new_customer(system, "cus_fixes", FAILING_CARD)
    to_day_end(system, 1)  # attempts 1 and 2 failed
    with system.db.session() as s:  # the customer updates their card
        payments.add_payment_method(s, "cus_fixes", "card", GOOD_CARD, service=payment_service(system))
    to_day_end(system, 20)
    got = by_day(mails)
    # Attempt 3 on day 3 succeeds: one receipt, and nothing after it.
    assert got[3] == ["Payment of $20.00 received for invoice INV-2026-000001"]
    assert max(got) == 3, got
    assert not any(WARNING in v or SUSPENDED in v for v in got.values())
    with system.db.session() as s:
        assert sales.get_invoice(s, invoice_id)["status"] == "paid"
        statuses = {j.status for j in s.scalars(select(ScheduledJob))}
    assert statuses == {"done"}
    assert state(system, "cus_fixes") == "active"
    assert system.access.check("cus_fixes", "reports").allowed


def test_payment_while_suspended_restores_access(engine_system: System, inbox: tuple[Inbox, str]) -> None:
    system, mails = engine_system, inbox[0]
    invoice_id = new_customer(system, "cus_late", FAILING_CARD)
    to_day_end(system, 15)
    assert state(system, "cus_late") == "suspended"
    assert system.access.check("cus_late", "reports").reason == "payment_overdue"
    with system.db.session() as s:
        payments.add_payment_method(s, "cus_late", "card", GOOD_CARD, service=payment_service(system))
        result = payments.retry_invoice_payment(s, invoice_id, service=payment_service(system))
    assert result.status == "paid"
    system.drain()
    assert state(system, "cus_late") == "active"
    # dunning.state_changed invalidated the cached access view: allowed again at once.
    assert system.access.check("cus_late", "reports").allowed
    to_day_end(system, 31)
    assert state(system, "cus_late") == "active"
    assert CANCELLED not in [m.subject for m in mails.mails]
    with system.db.session() as s:
        assert [x["status"] for x in sales.list_subscriptions(s, "cus_late")] == ["active"]


def test_redelivered_event_sends_nothing_twice(engine_system: System, inbox: tuple[Inbox, str]) -> None:
    system, mails = engine_system, inbox[0]
    new_customer(system, "cus_dup", FAILING_CARD)
    to_day_end(system, 0)
    before = len(mails.mails)
    auto = system.automation
    assert auto is not None
    with system.db.session() as s:
        failed = s.scalars(select(OutboxEvent).where(
            OutboxEvent.type == "invoice.payment_failed")).first()
        assert failed is not None
        envelope = failed.envelope()
        n_before = len(messaging.list_notifications(s, customer_id="cus_dup"))
        jobs_before = s.scalars(select(ScheduledJob)).all()
    # The handler itself, twice (what a broker redelivery past the bus's own record does),
    # and the same event id published again through the bus.
    for _ in range(2):
        with system.db.session() as s:
            auto.handle(s, envelope)
    assert system.bus is not None
    from engine.events import envelope_from_dict

    system.bus.publish([envelope_from_dict(envelope)])
    system.drain()
    system.jobs.run_due(system.clock.now() + timedelta(minutes=1))
    with system.db.session() as s:
        assert len(messaging.list_notifications(s, customer_id="cus_dup")) == n_before
        assert len(s.scalars(select(ScheduledJob)).all()) == len(jobs_before)
    assert len(mails.mails) == before
