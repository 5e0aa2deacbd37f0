"""Webhooks to a real local HTTP server: signed, retried on 500 and timeouts, dead-lettered."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.clock import TestClock
from engine.messaging import (
    Channels,
    Notification,
    RetryPolicy,
    WebhookChannel,
    add_webhook_endpoint,
    deliver_pending,
    disable_webhook_endpoint,
    notify,
    sign,
    verify_signature,
)
from engine.messaging.channels import PermanentError, check_webhook_url
from engine.messaging.samples import sample_data
from engine.store import Database, OutboxEvent

from .conftest import CUSTOMER, WebhookServer


def setup_endpoint(db: Database, clock: TestClock, server: WebhookServer) -> str:
    with db.session() as s:
        return add_webhook_endpoint(s, "cus_1", server.url, now=clock.now(),
                                    secret=server.secret).id


def record(db: Database, clock: TestClock, event_id: str = "evt_1") -> str:
    with db.session() as s:
        [r] = notify(s, customer=CUSTOMER, template="payment_failed", channels=["webhook"],
                     data=sample_data("payment_failed"), event_id=event_id,
                     rule_id="dunning/r1", now=clock.now())
    assert r.status == "pending", r.reason
    assert r.notification_id is not None
    return r.notification_id


def channel(timeout: float = 5.0, attempts: int = 4) -> Channels:
    return Channels([WebhookChannel(timeout=timeout, allow_private=True,
                                    retry=RetryPolicy(max_attempts=attempts,
                                                      base=timedelta(seconds=30)))])


def row(db: Database, nid: str) -> Notification:
    with db.session() as s:
        n = s.get(Notification, nid)
        assert n is not None
        return n


def test_signed_delivery(db: Database, clock: TestClock, webhook_server: WebhookServer) -> None:
    endpoint = setup_endpoint(db, clock, webhook_server)
    nid = record(db, clock)
    chans = channel()
    assert deliver_pending(db, chans, now=clock.now()).sent == 1
    chans.close()
    [req] = webhook_server.requests
    assert req["verified"] and req["forged_rejected"]
    assert req["headers"]["Billing-Webhook-Id"] == nid
    assert req["json"]["type"] == "payment_failed" and req["json"]["id"] == nid
    assert req["json"]["data"]["invoice"]["total"] == "1234.50"
    assert row(db, nid).target == endpoint


def test_signature_rejects_tampering_and_replay() -> None:
    body = b'{"a":1}'
    header = sign("k", 1_000_000, body)
    assert verify_signature("k", header, body, now=1_000_100)
    assert not verify_signature("k", header, b'{"a":2}', now=1_000_100)
    assert not verify_signature("k", header, body, now=1_000_000 + 301)  # stale
    assert not verify_signature("k", "garbage", body, now=1_000_000)


def test_500_is_retried_with_backoff(db: Database, clock: TestClock,
                                     webhook_server: WebhookServer) -> None:
    setup_endpoint(db, clock, webhook_server)
    webhook_server.plan = [500, 503]
    nid = record(db, clock)
    chans = channel()
    report = deliver_pending(db, chans, now=clock.now())
    assert report.retried == 1 and "HTTP 500" in report.errors[0]
    assert row(db, nid).next_attempt_at == clock.now() + timedelta(seconds=30)
    clock.set(clock.now() + timedelta(seconds=30))
    assert deliver_pending(db, chans, now=clock.now()).retried == 1
    assert row(db, nid).next_attempt_at == clock.now() + timedelta(seconds=60)
    clock.set(clock.now() + timedelta(seconds=60))
    assert deliver_pending(db, chans, now=clock.now()).sent == 1
    chans.close()
    assert len(webhook_server.requests) == 3
    assert len({r["headers"]["Billing-Webhook-Id"] for r in webhook_server.requests}) == 1
    assert all(r["verified"] for r in webhook_server.requests)


def test_timeout_is_retried(db: Database, clock: TestClock,
                            webhook_server: WebhookServer) -> None:
    setup_endpoint(db, clock, webhook_server)
    webhook_server.plan = [("slow", 1.5)]
    nid = record(db, clock)
    chans = channel(timeout=0.3)
    report = deliver_pending(db, chans, now=clock.now())
    assert report.retried == 1 and "timed out" in report.errors[0]
    clock.set(clock.now() + timedelta(minutes=1))
    assert deliver_pending(db, chans, now=clock.now()).sent == 1
    chans.close()
    assert row(db, nid).status == "sent"


def test_dead_lettered_after_n_attempts(db: Database, clock: TestClock,
                                        webhook_server: WebhookServer) -> None:
    setup_endpoint(db, clock, webhook_server)
    webhook_server.plan = [500] * 10
    nid = record(db, clock)
    chans = channel(attempts=3)
    for _ in range(5):
        deliver_pending(db, chans, now=clock.now())
        clock.set(clock.now() + timedelta(hours=1))
    chans.close()
    assert len(webhook_server.requests) == 3
    n = row(db, nid)
    assert (n.status, n.attempts) == ("dead", 3) and "HTTP 500" in (n.error or "")
    with db.session() as s:
        [failed] = s.scalars(select(OutboxEvent).where(
            OutboxEvent.type == "notification.failed")).all()
    assert failed.properties["dead_lettered"] is True


def test_each_endpoint_once_and_none_configured(db: Database, clock: TestClock,
                                                webhook_server: WebhookServer) -> None:
    with db.session() as s:
        [r] = notify(s, customer=CUSTOMER, template="payment_failed", channels=["webhook"],
                     data=sample_data("payment_failed"), event_id="e0", now=clock.now())
    assert (r.status, r.reason) == ("skipped", "customer has no webhook endpoint")
    first = setup_endpoint(db, clock, webhook_server)
    setup_endpoint(db, clock, webhook_server)
    with db.session() as s:
        results = notify(s, customer=CUSTOMER, template="payment_failed", channels=["webhook"],
                         data=sample_data("payment_failed"), event_id="e1", now=clock.now())
    assert [r.status for r in results] == ["pending", "pending"]
    with db.session() as s:
        again = notify(s, customer=CUSTOMER, template="payment_failed", channels=["webhook"],
                       data=sample_data("payment_failed"), event_id="e1", now=clock.now())
        assert [r.status for r in again] == ["duplicate", "duplicate"]
        disable_webhook_endpoint(s, first)
    chans = channel()
    report = deliver_pending(db, chans, now=clock.now())
    chans.close()
    assert (report.sent, report.failed) == (1, 1)
    assert "gone or disabled" in report.errors[0]
    assert len(webhook_server.requests) == 1


def test_private_addresses_are_refused_by_default() -> None:
    with pytest.raises(PermanentError, match="non-public"):
        check_webhook_url("http://127.0.0.1:9/x")
    with pytest.raises(PermanentError, match="non-public"):
        check_webhook_url("https://internal.example/x", resolve=lambda h: ["10.0.0.7"])
    with pytest.raises(PermanentError, match="http"):
        check_webhook_url("file:///etc/passwd", allow_private=True)
    check_webhook_url("https://hooks.example/x", resolve=lambda h: ["93.184.216.34"])
