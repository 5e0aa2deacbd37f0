"""What a test clock's advance costs the database, through POST /v1/clock/advance: the
lifecycle what-if and every journey run hundreds of clock stops a simulated year, so each
statement a stop saves is a saving of theirs (docs/console.md, the lifecycle what-if).
Counted, not timed: the statements SQLAlchemy sends, by kind."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine import messaging, sales
from engine.automation.models import ActionRecord
from engine.messaging import RetryPolicy
from engine.messaging.models import Notification
from engine.rules import publish_ruleset
from engine.scheduler import JobRun
from engine.store import Database, OutboxEvent
from engine.system import System
from engine.webhooks import UrlPolicy, create_endpoint
from engine.webhooks.models import EventDelivery
from tests.automation.conftest import START, Inbox, make_system
from tests.automation.test_declines_http import FAILING_CARD, GOOD_CARD, advance, http, signup, subjects
from tests.smtp import smtp_server

__all__ = ["http"]


@contextmanager
def statements(system: System) -> Iterator[Counter[str]]:
    """Counts, while open: outbox polls (the bus asking for due rows), outbox rows settled
    (one UPDATE per batch the bus applied), webhook claims (the sender asking for due
    deliveries), delivery claims (messaging asking for due notifications) and digest closes
    (for digest windows that ended), notification writes, savepoints, and the billing run's
    due queries."""
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        text = " ".join(sql.split())
        if text.startswith("SELECT") and "FROM outbox_events" in text and "published_at IS NULL" in text:
            seen["outbox polls"] += 1
        elif text.startswith("UPDATE outbox_events SET published_at"):
            seen["batches applied"] += 1
        elif text.startswith("SELECT event_webhook_deliveries.seq"):
            seen["webhook claims"] += 1
        elif text.startswith("SELECT notifications.id FROM") and "notifications.next_attempt_at <=" in text:
            seen["delivery claims"] += 1
        elif text.startswith("SELECT notifications.id,") and "notifications.next_attempt_at <=" in text:
            seen["digest closes"] += 1
        elif text.startswith("INSERT INTO notifications"):
            seen["notification inserts"] += 1
        elif text.startswith("SAVEPOINT"):
            seen["savepoints"] += 1
        elif text.startswith("SELECT sales_subscriptions.id") and "sales_subscriptions.next_run_at <=" in text:
            seen["billing runs"] += 1
        seen["all"] += 1

    sa.event.listen(system.db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(system.db.engine, "before_cursor_execute", count)


def test_a_clock_stop_asks_the_outbox_only_after_something_wrote_to_it(
    http: tuple[System, TestClient], inbox: Any
) -> None:
    """Eight days of dunning (a declined card, its retries, the daily sweeps and emails): the
    outbox is asked for due events at the advance's start and end and after work that wrote
    some, not after every job of every stop (most found nothing, a transaction each)."""
    system, client = http
    signup(system, client, "cus_costs", FAILING_CARD)
    with statements(system) as seen:
        advance(client, "8d")
    print(dict(seen))
    assert seen["batches applied"] > 0  # the retries and sweeps did write events
    # Each batch applied is followed by one poll that finds the outbox empty, plus the
    # advance's own first and last looks.
    assert seen["outbox polls"] <= 2 * seen["batches applied"] + 2
    assert any("failed" in s.lower() for s in subjects(inbox[0]))  # the dunning emails went out


def test_a_clock_stop_runs_the_billing_run_once(http: tuple[System, TestClient], inbox: Any) -> None:
    """Each stop of an advance runs the billing run (sales.advance_clock) and then the
    scheduler's jobs, `billing` first: that job no longer runs the billing run a second
    time at the same instant (the credit grants still expire after it)."""
    system, client = http
    signup(system, client, "cus_once", FAILING_CARD)
    with system.db.session() as s:
        slots_before = s.scalar(select(sa.func.count()).select_from(JobRun).where(JobRun.job == "billing"))
    with statements(system) as seen:
        advance(client, "8d")
    with system.db.session() as s:
        runs = list(s.scalars(select(JobRun).where(JobRun.job == "billing").order_by(JobRun.slot)))
    stops = len(runs) - int(slots_before or 0)
    assert stops > 5  # daily sweeps, retries
    assert all(r.status == "done" for r in runs)
    # Nothing falls due in these eight days: each billing run asks once for periods due.
    assert seen["billing runs"] == stops  # twice as many on main


HALF_DONE = """\
ruleset: halfdone
rules:
  - id: three
    on: payment.failed
    then:
      - emit: {type: ops.first}
      - tag: {add: [late]}
      - emit: {type: ops.third}
"""


def _failed(event_id: str, customer_id: str | None) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "payment.failed",
        "customer_id": customer_id,
        "time": "2026-03-01T00:00:00Z",
        "properties": {},
    }


def test_an_events_actions_share_one_savepoint_and_a_refused_one_leaves_nothing_half_done(
    tmp_path: Any, psp: Any, inbox: Any
) -> None:
    """A rule's three actions: with a customer all three are done, in one savepoint (not one
    each); without one, `tag` is refused after its ledger row was written: it is recorded
    skipped, its ledger row is gone (a later cause can still tag), the other two are done."""
    system = make_system(tmp_path, psp.url, inbox[1], rulesets=())
    path = tmp_path / "halfdone.yaml"
    path.write_text(HALF_DONE)
    with system.db.session() as s:
        publish_ruleset(s, str(path), "test", smoke=False, clock=system.clock)
        sales.create_customer(
            s, {"id": "cus_t", "email": "t@example.com", "name": "T", "country": "US"}, clock=system.clock
        )
    system.sync_rules()
    auto = system.automation
    assert auto is not None
    with statements(system) as seen, system.db.session() as s:
        auto.handle_many(s, [_failed("evt_with", "cus_t"), _failed("evt_again", "cus_t")])
    assert seen["savepoints"] == 1  # six actions of two events: one savepoint (six on main)
    with system.db.session() as s:
        decision = auto.handle(s, _failed("evt_without", None))
    assert decision is not None
    with system.db.session() as s:
        records = {r.key: r.action for r in s.scalars(select(ActionRecord))}
        emitted = sorted(e.type for e in s.scalars(select(OutboxEvent).where(OutboxEvent.type.like("ops.%"))))
        tags = sales.get_customer(s, "cus_t")["tags"]
    assert tags == ["late"]
    without = sorted(a for k, a in records.items() if "evt_without" in k)
    assert without == ["emit", "emit"]  # the refused tag's ledger row rolled back with it
    assert emitted == ["ops.first"] * 3 + ["ops.third"] * 3


def test_a_clock_stop_claims_no_webhook_delivery_where_no_endpoint_exists(
    http: tuple[System, TestClient], inbox: Any
) -> None:
    """Eight days of dunning with no webhook endpoint (the lifecycle what-if): no stop asks
    for due webhook deliveries (each one did, a query and a transaction). An endpoint
    registered after it is seen at the next advance, whose events go out to it."""
    system, client = http
    signup(system, client, "cus_hooks", FAILING_CARD)
    with statements(system) as seen:
        advance(client, "8d")
    print(dict(seen))
    assert seen["webhook claims"] == 0
    assert any("failed" in s.lower() for s in subjects(inbox[0]))  # the stops did their work
    with system.db.session() as s:
        # Nothing listens there: each delivery is attempted and fails (its retry is scheduled).
        hooks = UrlPolicy(allow_http=True, allow_private=True)
        create_endpoint(s, "http://127.0.0.1:9/hooks", ["*"], now=system.clock.now(), policy=hooks)
    with statements(system) as seen:
        advance(client, "30d")  # the renewal: invoice and payment events
    assert seen["webhook claims"] > 0
    with system.db.session() as s:
        attempted = s.scalar(select(sa.func.count()).select_from(EventDelivery).where(EventDelivery.attempts > 0))
    assert attempted and attempted > 0


def _subscribe(client: TestClient, cid: str, card: str) -> None:
    """A customer and a subscription over HTTP, at the clock's time (nothing advanced)."""
    r = client.post("/v1/customers", json={"id": cid, "email": f"{cid}@example.com", "name": cid, "country": "US"})
    assert r.status_code == 201, r.text
    r = client.post(
        "/v1/subscriptions",
        json={"customer_id": cid, "plan": "basic", "payment_method": {"type": "card", "token": card}},
    )
    assert r.status_code == 201, r.text


def _messages(system: System) -> list[tuple[str, str, str, str]]:
    with system.db.session() as s:
        rows = s.execute(
            select(Notification.customer_id, Notification.template, Notification.channel, Notification.status).order_by(
                Notification.customer_id, Notification.template, Notification.channel
            )
        )
        return [(r.customer_id, r.template, r.channel, r.status) for r in rows]


def test_a_bus_batchs_messages_are_written_in_one_statement(http: tuple[System, TestClient], inbox: Any) -> None:
    """Three customers subscribe at the same time with a card that declines: at the next
    stop their invoices are finalized and their payments fail in the same bus batches,
    whose rules ask for twelve messages (the invoice; the failure by email and in-app; the
    retry's date). Each batch writes its messages in one INSERT (on main one per event's
    notify: nine), the same messages, each sent once."""
    system, client = http
    customers = ["cus_m1", "cus_m2", "cus_m3"]
    for cid in customers:
        _subscribe(client, cid, FAILING_CARD)
    with statements(system) as seen:
        advance(client, "1h")
    written = _messages(system)
    print(dict(seen), written)
    assert written == [
        (c, t, ch, "sent")
        for c in customers
        for t, ch in (
            ("invoice_issued", "email"),
            ("payment_failed", "email"),
            ("payment_failed", "in_app"),
            ("payment_retry_scheduled", "email"),
        )
    ]
    assert seen["notification inserts"] == 2  # invoice.finalized's batch, then the failures'
    assert sorted(m.to for m in inbox[0].mails) == sorted(f"{c}@example.com" for c in customers for _ in "123")


def test_a_redelivered_bus_batch_writes_no_message_twice(tmp_path: Any, psp: Any, inbox: Any) -> None:
    """The same batch of three events delivered twice (the bus retries after a crash before
    its commit): the first writes the six messages in one INSERT (three on main), the
    second writes none (messaging's dedup keys: rule, event, channel)."""
    system = make_system(tmp_path, psp.url, inbox[1])
    customers = ["cus_r1", "cus_r2", "cus_r3"]
    with system.db.session() as s:
        for cid in customers:
            sales.create_customer(
                s, {"id": cid, "email": f"{cid}@example.com", "name": cid, "country": "US"}, clock=system.clock
            )
    auto = system.automation
    assert auto is not None
    batch = [_quota_warning(f"evt_{cid}", cid) for cid in customers]
    with statements(system) as seen, system.db.session() as s:
        auto.handle_many(s, batch)
    assert seen["notification inserts"] == 1  # three on main
    first = _messages(system)
    assert first == [(c, "quota_warning", ch, "pending") for c in customers for ch in ("email", "in_app")]
    with system.db.session() as s:
        auto.handle_many(s, batch)
    assert _messages(system) == first
    with system.db.session() as s:
        assert s.scalar(select(sa.func.count()).select_from(Notification)) == 6


def _quota_warning(event_id: str, customer_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "usage.threshold_reached",
        "customer_id": customer_id,
        "time": "2026-03-01T00:00:00Z",
        "properties": {"feature": "exports", "threshold": 80, "used": 8, "limit": 10},
    }


@dataclass
class DeferringInbox(Inbox):
    """The SMTP server; while `deferring`, it answers every message "451 try again later"
    (a transient failure: the message is retried with backoff)."""

    deferring: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.deferring:
            return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, str]]:
    """This module's SMTP server (the `http` fixture's): one that can defer messages."""
    handler = DeferringInbox()
    with smtp_server(handler) as url:
        yield handler, url


def test_a_clock_stop_claims_no_message_while_none_is_due(http: tuple[System, TestClient], inbox: Any) -> None:
    """A customer whose card works: after the signup nothing is said for eight days, and no
    stop asks for due messages (each one did: a query and a transaction, 9 on main)."""
    system, client = http
    signup(system, client, "cus_quiet", GOOD_CARD)
    sent = len(inbox[0].mails)
    with statements(system) as seen:
        advance(client, "8d")
    print(dict(seen))
    assert seen["delivery claims"] == seen["digest closes"] == 0
    assert sent == 2 and len(inbox[0].mails) == 2  # the invoice and its payment, at the signup


def test_a_retry_goes_out_at_the_first_stop_after_its_time_and_no_stop_before_asks(
    http: tuple[System, TestClient], inbox: Any
) -> None:
    """The SMTP server defers the signup's two emails; their retry falls due 30 hours later
    (day 1, 07:00). The next stops (the daily sweeps at 06:00 of days 0 and 1) do not ask
    for due messages; the one of day 2 sends both, as on main (which asked at every stop)."""
    system, client = http
    assert system.channels is not None
    email = system.channels.require("email")
    email.retry = RetryPolicy(max_attempts=6, base=timedelta(hours=30), cap=timedelta(hours=30))  # type: ignore[misc]
    inbox[0].deferring = True
    signup(system, client, "cus_retry", GOOD_CARD)
    inbox[0].deferring = False
    with system.db.session() as s:
        waiting = s.execute(select(Notification.status, Notification.attempts, Notification.next_attempt_at)).all()
    assert {(w.status, w.attempts) for w in waiting} == {("pending", 1)}
    assert {w.next_attempt_at for w in waiting} == {START + timedelta(days=1, hours=7)}
    with statements(system) as seen:
        advance(client, "3d")
    print(dict(seen))
    assert [m.day for m in inbox[0].mails] == [2, 2]  # at day 2's stop, the first after day 1 07:00
    assert seen["delivery claims"] == 2  # that stop's: the claim that found them, the one that found nothing
    assert seen["digest closes"] == 1
    assert {m[3] for m in _messages(system)} == {"sent"}


def test_a_message_another_process_wrote_is_sent_at_the_next_advance(
    http: tuple[System, TestClient], inbox: Any, tmp_path: Any
) -> None:
    """What another process writes within an advance is not seen in it (this process counts
    its own writes): the advance forgets what it knew at its start and end, so a message
    another process (here another Database on the same file) recorded goes out at the next."""
    system, client = http
    signup(system, client, "cus_other", GOOD_CARD)
    with statements(system) as seen:
        advance(client, "1d")
    assert seen["delivery claims"] == 0
    other = Database(system.db.url)
    try:
        with other.session() as s:
            customer = {"id": "cus_other", "email": "cus_other@example.com", "name": "Other"}
            messaging.notify(
                s,
                customer=customer,
                template="quota_warning",
                channels=["email"],
                event_id="evt_other",
                data={
                    "quota": {"feature": "exports", "feature_name": "Exports", "used": 8, "limit": 10, "percent": 80}
                },
                now=system.clock.now(),
            )
    finally:
        other.dispose()
    advance(client, "1h")
    assert any("80%" in m.subject for m in inbox[0].mails)
