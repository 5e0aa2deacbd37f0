"""Email over a real SMTP server (aiosmtpd), including STARTTLS + AUTH and an outage."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.clock import TestClock
from engine.messaging import (
    Channels,
    EmailChannel,
    Notification,
    RetryPolicy,
    SmtpSettings,
    deliver_pending,
    list_dead_letters,
    notify,
    retry_dead_letter,
)
from engine.messaging.samples import sample_data
from engine.store import Database, OutboxEvent

from .conftest import CUSTOMER, SmtpServer, free_port, start_smtp

pytestmark = pytest.mark.smtp


def record(db: Database, clock: TestClock, template: str = "payment_failed",
           event_id: str = "evt_1", customer: dict | None = None) -> str:
    with db.session() as s:
        [r] = notify(s, customer=customer or CUSTOMER, template=template, channels=["email"],
                     data=sample_data(template), event_id=event_id, rule_id="dunning/r1",
                     now=clock.now())
    assert r.status == "pending", r.reason
    assert r.notification_id is not None
    return r.notification_id


def status(db: Database, nid: str) -> Notification:
    with db.session() as s:
        row = s.get(Notification, nid)
        assert row is not None
        return row


def test_smtp_url_parsing() -> None:
    s = SmtpSettings.from_url("smtp://us%40er:p%3Ass@mail.example.com:2525?starttls=1"
                              "&from=billing@example.com&timeout=3")
    assert (s.host, s.port, s.username, s.password, s.starttls, s.implicit_tls) == \
        ("mail.example.com", 2525, "us@er", "p:ss", True, False)
    assert s.sender == "billing@example.com" and s.timeout == 3
    assert SmtpSettings.from_url("smtps://h").port == 465
    assert SmtpSettings.from_url("smtp://h?starttls=yes").port == 587
    assert "secret" not in repr(SmtpSettings.from_url("smtp://u:secret@h"))
    for bad in ("http://h", "smtp://", "smtp://h?starttls=maybe"):
        with pytest.raises(ValueError, match="BILLING_SMTP_URL"):
            SmtpSettings.from_url(bad)


def test_email_arrives_with_subject_and_body(db: Database, clock: TestClock,
                                             smtp_server: SmtpServer) -> None:
    nid = record(db, clock)
    record(db, clock, "invoice_issued", "evt_2", dict(CUSTOMER, locale="de"))
    channels = Channels([EmailChannel.from_url(smtp_server.url)])
    report = deliver_pending(db, channels, now=clock.now())
    channels.close()
    assert report.sent == 2, report.errors
    by_template = {m["X-Billing-Template"]: m for m in smtp_server.inbox.wait_for(2)}
    first, second = by_template["payment_failed"], by_template["invoice_issued"]
    assert first["Subject"] == "Payment for invoice INV-2026-0042 failed"
    assert first["To"] == "ada@example.com" and first["From"] == "billing@example.com"
    assert first["Message-ID"] == f"<{nid}@example.com>"
    text = first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = first.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "we could not collect €1,234.50 for invoice INV-2026-0042" in text
    assert "<strong>€1,234.50</strong>" in html
    assert second["Subject"] == "Rechnung INV-2026-0042 über 1.234,50 €"
    assert ("billing@example.com", ["ada@example.com"]) in smtp_server.inbox.envelopes
    assert status(db, nid).status == "sent"
    with db.session() as s:
        sent = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "notification.sent")).all()
    assert {e.properties["channel"] for e in sent} == {"email"} and len(sent) == 2


def test_starttls_and_auth(db: Database, clock: TestClock, smtp_tls_server: SmtpServer,
                           tls_cert: tuple[Path, Path]) -> None:
    cert, _ = tls_cert
    base = f"smtp://billing:s3cret%2Fpass@127.0.0.1:{smtp_tls_server.port}"
    nid = record(db, clock)
    # Wrong password: a transient failure, kept for a retry.
    bad = Channels([EmailChannel.from_url(base.replace("s3cret", "nope") +
                                          f"?starttls=1&cafile={cert}")])
    report = deliver_pending(db, bad, now=clock.now())
    assert report.retried == 1 and "authentication failed" in report.errors[0]
    bad.close()
    clock.set(clock.now() + timedelta(minutes=1))
    good = Channels([EmailChannel.from_url(base + f"?starttls=1&cafile={cert}&from=b@x.org")])
    report = deliver_pending(db, good, now=clock.now())
    good.close()
    assert report.sent == 1, report.errors
    [msg] = smtp_tls_server.inbox.wait_for(1)
    assert msg["Subject"] == "Payment for invoice INV-2026-0042 failed"
    assert status(db, nid).attempts == 2


def test_unreachable_smtp_is_retried_not_lost_not_duplicated(db: Database,
                                                              clock: TestClock) -> None:
    port = free_port()  # nothing listens here yet
    channel = EmailChannel.from_url(f"smtp://127.0.0.1:{port}?timeout=2",
                                    RetryPolicy(max_attempts=5, base=timedelta(minutes=1)))
    channels = Channels([channel])
    nid = record(db, clock)
    for wait in (0, 1, 2):  # attempts 1-3 fail: backoff of 1, 2, then 4 minutes
        clock.set(clock.now() + timedelta(minutes=wait))
        report = deliver_pending(db, channels, now=clock.now())
        assert report.retried == 1 and "Connection refused" in report.errors[0]
        # Not due again before its backoff ends.
        assert deliver_pending(db, channels, now=clock.now()).attempted == 0
    row = status(db, nid)
    assert (row.status, row.attempts) == ("pending", 3)
    assert row.next_attempt_at == clock.now() + timedelta(minutes=4)
    server = start_smtp(port)
    try:
        clock.set(clock.now() + timedelta(minutes=4))
        assert deliver_pending(db, channels, now=clock.now()).sent == 1
        for _ in range(3):
            clock.set(clock.now() + timedelta(hours=1))
            assert deliver_pending(db, channels, now=clock.now()).attempted == 0
        assert len(server.inbox.wait_for(1)) == 1
        assert len(server.inbox.wait_for(2, timeout=0.3)) == 1
    finally:
        channels.close()
        server.controller.stop()
    assert status(db, nid).status == "sent"


def test_dead_lettered_after_n_attempts_and_requeued(db: Database, clock: TestClock) -> None:
    port = free_port()
    channels = Channels([EmailChannel.from_url(
        f"smtp://127.0.0.1:{port}?timeout=2",
        RetryPolicy(max_attempts=3, base=timedelta(seconds=10)))])
    nid = record(db, clock)
    for _ in range(3):
        deliver_pending(db, channels, now=clock.now())
        clock.set(clock.now() + timedelta(hours=1))
    assert status(db, nid).status == "dead"
    with db.session() as s:
        [dead] = list_dead_letters(s)
        failed = s.scalars(select(OutboxEvent).where(
            OutboxEvent.type == "notification.failed")).all()
    assert dead["id"] == nid and dead["attempts"] == 3
    assert len(failed) == 1 and failed[0].properties["dead_lettered"] is True
    server = start_smtp(port)
    try:
        with db.session() as s:
            assert retry_dead_letter(s, nid, now=clock.now())
        assert deliver_pending(db, channels, now=clock.now()).sent == 1
        assert len(server.inbox.wait_for(1)) == 1
    finally:
        channels.close()
        server.controller.stop()


def test_a_dropped_connection_is_reopened(db: Database, clock: TestClock,
                                          smtp_server: SmtpServer) -> None:
    channel = EmailChannel.from_url(smtp_server.url)
    channels = Channels([channel])
    record(db, clock, event_id="a")
    assert deliver_pending(db, channels, now=clock.now()).sent == 1
    [conn] = channel._idle  # kept open for the next send
    conn.sock.close()  # type: ignore[union-attr]  # the server went away meanwhile
    record(db, clock, event_id="b")
    assert deliver_pending(db, channels, now=clock.now()).sent == 1
    channels.close()
    assert len(smtp_server.inbox.wait_for(2)) == 2


def test_refused_recipient_fails_permanently(db: Database, clock: TestClock) -> None:
    class Refuse:
        async def handle_RCPT(self, server, session, envelope, address, options):
            return "550 no such user"

    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(Refuse(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        nid = record(db, clock)
        channels = Channels([EmailChannel.from_url(f"smtp://127.0.0.1:{port}")])
        report = deliver_pending(db, channels, now=clock.now())
        channels.close()
    finally:
        controller.stop()
    assert report.failed == 1 and "550" in report.errors[0]
    assert status(db, nid).status == "failed"


def test_header_injection_in_the_address_is_refused(db: Database, clock: TestClock,
                                                    smtp_server: SmtpServer) -> None:
    evil = dict(CUSTOMER, email="ada@example.com\r\nBcc: everyone@example.com")
    nid = record(db, clock, customer=evil)
    channels = Channels([EmailChannel.from_url(smtp_server.url)])
    report = deliver_pending(db, channels, now=clock.now())
    channels.close()
    assert report.failed == 1 and "not a plain ASCII address" in report.errors[0]
    assert status(db, nid).status == "failed"
    assert smtp_server.inbox.wait_for(1, timeout=0.3) == []


def test_many_messages_over_concurrent_connections(db: Database, clock: TestClock,
                                                   smtp_server: SmtpServer) -> None:
    for i in range(30):
        record(db, clock, "invoice_issued", f"evt_{i}", dict(CUSTOMER, email=f"c{i}@example.com"))
    channels = Channels([EmailChannel.from_url(smtp_server.url)])
    report = deliver_pending(db, channels, now=clock.now(), concurrency=4, record_every=7)
    channels.close()
    assert report.sent == 30
    received = smtp_server.inbox.wait_for(30)
    assert sorted(m["To"] for m in received) == sorted(f"c{i}@example.com" for i in range(30))
    with db.session() as s:
        sent = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "notification.sent")).all()
    assert len(sent) == 30
