"""Recording and delivering: dedup, preferences, quiet hours, digests, the in-app feed and
the events, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.clock import TestClock
from engine.messaging import (
    Channels,
    FileSmsProvider,
    InAppChannel,
    Notification,
    NotifyRequest,
    SmsChannel,
    deliver_pending,
    get_preferences,
    list_feed,
    list_notifications,
    mark_read,
    notify,
    notify_many,
    set_preferences,
    unread_count,
)
from engine.messaging.samples import sample_data
from engine.store import Database, OutboxEvent

from .conftest import CUSTOMER


def events(db: Database, type_: str) -> list[OutboxEvent]:
    with db.session() as s:
        return list(s.scalars(select(OutboxEvent).where(OutboxEvent.type == type_)))


def rows(db: Database) -> list[Notification]:
    with db.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.created_at,
                                                            Notification.id)))


def send(db: Database, clock: TestClock, template: str = "payment_failed",
         channels: tuple[str, ...] = ("in_app",), event_id: str = "evt_1",
         rule_id: str | None = "dunning/first-failure", **kw: object) -> list:
    with db.session() as s:
        return notify(s, customer=kw.pop("customer", CUSTOMER), template=template,  # type: ignore[arg-type]
                      channels=list(channels), data=kw.pop("data", sample_data(template)),  # type: ignore[arg-type]
                      event_id=event_id, rule_id=rule_id, now=clock.now(), **kw)  # type: ignore[arg-type]


@pytest.fixture
def chans(sms_provider: FileSmsProvider) -> Channels:
    return Channels([InAppChannel(), SmsChannel(sms_provider)])


def test_in_app_feed_read_and_unread(db: Database, clock: TestClock, chans: Channels) -> None:
    [r] = send(db, clock)
    assert r.status == "pending"
    report = deliver_pending(db, chans, now=clock.now())
    assert report.sent == 1
    clock.set(clock.now() + timedelta(minutes=1))
    send(db, clock, "upgrade_offer", event_id="evt_2", rule_id="upsell")
    deliver_pending(db, chans, now=clock.now())
    with db.session() as s:
        feed = list_feed(s, "cus_1")
        assert [f["title"] for f in feed] == ["Upgrade to Pro", "Payment failed"]
        assert not any(f["read"] for f in feed)
        assert unread_count(s, "cus_1") == 2
        assert mark_read(s, "cus_1", [feed[1]["id"]], now=clock.now()) == 1
        assert mark_read(s, "someone_else", [feed[0]["id"]], now=clock.now()) == 0
    with db.session() as s:
        assert unread_count(s, "cus_1") == 1
        assert [f["title"] for f in list_feed(s, "cus_1", unread_only=True)] == ["Upgrade to Pro"]
        assert mark_read(s, "cus_1", now=clock.now()) == 1
        assert unread_count(s, "cus_1") == 0
    sent = events(db, "notification.sent")
    assert len(sent) == 2 and sent[0].customer_id == "cus_1"
    assert sent[0].properties["channel"] == "in_app"


def test_redelivered_event_sends_once(db: Database, clock: TestClock, chans: Channels,
                                      sms_provider: FileSmsProvider) -> None:
    first = send(db, clock, channels=("in_app", "sms"))
    assert [r.status for r in first] == ["pending", "pending"]
    deliver_pending(db, chans, now=clock.now())
    for _ in range(3):  # the bus redelivers the event
        again = send(db, clock, channels=("in_app", "sms"))
        assert [r.status for r in again] == ["duplicate", "duplicate"]
        assert [r.notification_id for r in again] == [r.notification_id for r in first]
        deliver_pending(db, chans, now=clock.now())
    assert len(rows(db)) == 2
    assert len(sms_provider.read()) == 1
    with db.session() as s:
        assert len(list_feed(s, "cus_1")) == 1
    # Another rule on the same event is another notification.
    [other] = send(db, clock, rule_id="dunning/other")
    assert other.status == "pending"


def test_rolled_back_caller_sends_nothing(db: Database, clock: TestClock,
                                          chans: Channels) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        notify(s, customer=CUSTOMER, template="payment_failed", channels=["in_app"],
               data=sample_data("payment_failed"), event_id="evt_x", rule_id="r", now=clock.now())
        raise RuntimeError("the caller's transaction fails")
    assert deliver_pending(db, chans, now=clock.now()).sent == 0
    assert rows(db) == []


def test_opted_out_channel_is_skipped_but_transactional_is_not(
        db: Database, clock: TestClock, chans: Channels, sms_provider: FileSmsProvider) -> None:
    with db.session() as s:
        set_preferences(s, "cus_1", now=clock.now(), opted_out_channels=["sms"],
                        opted_out_categories=["offers"])
    offer = send(db, clock, "upgrade_offer", channels=("sms", "in_app"), event_id="e1")
    assert [r.status for r in offer] == ["skipped", "skipped"]
    assert "opted out of channel sms" in (offer[0].reason or "")
    assert "opted out of category offers" in (offer[1].reason or "")
    usage = send(db, clock, "quota_warning", channels=("sms", "in_app"), event_id="e2")
    assert [r.status for r in usage] == ["skipped", "pending"]
    invoice = send(db, clock, "invoice_issued", channels=("sms",), event_id="e3")
    assert [r.status for r in invoice] == ["pending"]  # transactional: not turned off
    deliver_pending(db, chans, now=clock.now())
    texts = [m["text"] for m in sms_provider.read()]
    assert len(texts) == 1 and texts[0].startswith("Invoice INV-2026-0042")
    with db.session() as s, pytest.raises(ValueError, match="transactional"):
        set_preferences(s, "cus_1", now=clock.now(), opted_out_categories=["invoices"])


def test_preferences_validation(db: Database, clock: TestClock) -> None:
    with db.session() as s:
        with pytest.raises(ValueError, match="unknown channel"):
            set_preferences(s, "cus_1", now=clock.now(), opted_out_channels=["pigeon"])
        with pytest.raises(ValueError, match="time zone"):
            set_preferences(s, "cus_1", now=clock.now(), timezone="Mars/Olympus")
        with pytest.raises(ValueError, match="HH:MM"):
            set_preferences(s, "cus_1", now=clock.now(), quiet_hours=("22", "07:00"))
    with db.session() as s:
        p = set_preferences(s, "cus_1", now=clock.now(), quiet_hours=("22:00", "07:00"))
        assert p.quiet_hours is not None
        assert get_preferences(s, "cus_2").opted_out_channels == frozenset()


def test_quiet_hours_defer_non_urgent_messages(db: Database, chans: Channels,
                                               sms_provider: FileSmsProvider) -> None:
    # 23:30 in Berlin (22:30 UTC in winter): inside 22:00-07:00.
    clock = TestClock(datetime(2026, 1, 10, 22, 30, tzinfo=UTC))
    with db.session() as s:
        set_preferences(s, "cus_1", now=clock.now(), quiet_hours=("22:00", "07:00"))
    [deferred] = send(db, clock, "quota_warning", channels=("sms",), event_id="q1")
    [urgent] = send(db, clock, "account_suspended", channels=("sms",), event_id="q2",
                    urgent=True)
    [feed] = send(db, clock, "quota_warning", channels=("in_app",), event_id="q3")
    assert deferred.deliver_at == datetime(2026, 1, 11, 6, 0, tzinfo=UTC)  # 07:00 Berlin
    assert urgent.deliver_at == clock.now() and feed.deliver_at == clock.now()
    deliver_pending(db, chans, now=clock.now())
    assert [m["text"].split(":")[0] for m in sms_provider.read()] == ["Your account is suspended"]
    clock.set(datetime(2026, 1, 11, 5, 59, tzinfo=UTC))
    assert deliver_pending(db, chans, now=clock.now()).sent == 0
    clock.set(datetime(2026, 1, 11, 6, 0, tzinfo=UTC))
    assert deliver_pending(db, chans, now=clock.now()).sent == 1
    assert len(sms_provider.read()) == 2
    # Outside quiet hours nothing waits; the customer's own zone decides (10:00 Berlin).
    clock.set(datetime(2026, 1, 11, 9, 0, tzinfo=UTC))
    [now_sent] = send(db, clock, "quota_warning", channels=("sms",), event_id="q4")
    assert now_sent.deliver_at == clock.now()


def test_digest_batches_frequent_warnings(db: Database, clock: TestClock, chans: Channels
                                          ) -> None:
    window = timedelta(hours=1)
    for i, percent in enumerate((80, 90, 95)):
        data = sample_data("quota_warning")
        data["quota"]["percent"] = percent
        [r] = send(db, clock, "quota_warning", channels=("in_app",), event_id=f"u{i}",
                   rule_id="usage/warn", data=data, digest=window)
        assert r.status == "digest"
        assert r.deliver_at == datetime(2026, 1, 1, 1, 0, tzinfo=UTC)  # the first's window
        clock.set(clock.now() + timedelta(minutes=10))
    assert deliver_pending(db, chans, now=clock.now()).sent == 0  # window still open
    clock.set(datetime(2026, 1, 1, 1, 0, tzinfo=UTC))
    report = deliver_pending(db, chans, now=clock.now())
    assert (report.digests, report.sent) == (1, 1)
    with db.session() as s:
        [entry] = list_feed(s, "cus_1")
    assert entry["title"] == "3 updates"
    assert "80% of API calls used" in entry["body"] and "95% of API calls used" in entry["body"]
    statuses = sorted(r.status for r in rows(db))
    assert statuses == ["digested", "digested", "digested", "sent"]
    # A lone message in a window goes out as itself.
    [single] = send(db, clock, "quota_warning", channels=("in_app",), event_id="u9",
                    rule_id="usage/warn", digest=window)
    clock.set(clock.now() + window)
    report = deliver_pending(db, chans, now=clock.now())
    assert (report.digests, report.sent) == (0, 1)
    with db.session() as s:
        assert list_feed(s, "cus_1")[0]["title"] == "80% of API calls used"


def test_render_failure_fails_that_notification_only(db: Database, clock: TestClock,
                                                     chans: Channels) -> None:
    results = send(db, clock, "payment_failed", channels=("in_app", "sms"),
                   data={"payment": {}})  # no invoice
    assert [r.status for r in results] == ["failed", "failed"]
    assert "'invoice' is undefined" in (results[0].reason or "")
    failed = events(db, "notification.failed")
    assert len(failed) == 2 and "undefined" in failed[0].properties["error"]
    assert deliver_pending(db, chans, now=clock.now()).attempted == 0
    # The other notifications of the caller are unaffected.
    [ok] = send(db, clock, "payment_succeeded", channels=("in_app",), event_id="evt_ok")
    assert ok.status == "pending"


def test_missing_address_and_unconfigured_channel(db: Database, clock: TestClock,
                                                   chans: Channels) -> None:
    customer = {k: v for k, v in CUSTOMER.items() if k != "phone"}
    [r] = send(db, clock, channels=("sms",), customer=customer)
    assert (r.status, r.reason) == ("failed", "customer has no phone number")
    [mail] = send(db, clock, channels=("email",), event_id="evt_m")
    assert mail.status == "pending"
    # No email channel configured: it stays pending, not lost.
    assert deliver_pending(db, chans, now=clock.now()).attempted == 0
    with db.session() as s:
        assert [n["status"] for n in list_notifications(s, channel="email")] == ["pending"]


def test_unknown_channel_is_refused(db: Database, clock: TestClock) -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        send(db, clock, channels=("fax",))


def test_a_run_that_died_mid_send_is_picked_up_after_its_lease(
        db: Database, clock: TestClock, chans: Channels) -> None:
    [r] = send(db, clock)
    # A run claimed it and died before marking it: the row stays `sending` for its lease.
    with db.session() as s:
        row = s.get(Notification, r.notification_id)
        assert row is not None
        row.status, row.attempts = "sending", 1
        row.lease_until = clock.now() + timedelta(minutes=5)
    # The lease counts on the wall clock (`wall`), here the test's own.
    assert deliver_pending(db, chans, now=clock.now(), wall=clock).attempted == 0
    clock.set(clock.now() + timedelta(minutes=5))
    assert deliver_pending(db, chans, now=clock.now(), wall=clock).sent == 1
    with db.session() as s:
        assert len(list_feed(s, "cus_1")) == 1
        row = s.get(Notification, r.notification_id)
        assert row is not None and (row.status, row.attempts) == ("sent", 2)


def test_channels_from_settings(tmp_path: Path) -> None:
    chans = Channels.from_settings(smtp_url="smtp://127.0.0.1:2525", sms_file=tmp_path / "s")
    assert sorted(chans.names()) == ["email", "in_app", "sms", "webhook"]
    chans.close()
    assert "email" not in Channels.from_settings(smtp_url="", webhooks=False).names()


def test_a_partly_redelivered_request_records_only_the_new_channel(
        db: Database, clock: TestClock) -> None:
    [first] = send(db, clock, channels=("in_app",))
    again = send(db, clock, channels=("in_app", "sms"))
    assert [r.status for r in again] == ["duplicate", "pending"]
    assert again[0].notification_id == first.notification_id
    assert sorted(r.channel for r in rows(db)) == ["in_app", "sms"]


def test_preferences_set_between_two_messages_apply_to_the_second(
        db: Database, clock: TestClock) -> None:
    assert [r.status for r in send(db, clock, "quota_warning", event_id="e1")] == ["pending"]
    with db.session() as s:
        set_preferences(s, "cus_1", now=clock.now(), opted_out_channels=["in_app"])
    [r] = send(db, clock, "quota_warning", event_id="e2")
    assert r.status == "skipped" and "opted out of channel in_app" in (r.reason or "")


def test_notify_many_records_as_one_at_a_time_does(db: Database, clock: TestClock) -> None:
    with db.session() as s:
        set_preferences(s, "cus_2", now=clock.now(), opted_out_channels=["sms"])
    customers: list[dict[str, Any]] = [
        CUSTOMER, {**CUSTOMER, "id": "cus_2"}, {**CUSTOMER, "id": "cus_3", "phone": None}]
    requests = [NotifyRequest(c, "quota_warning", ["in_app", "sms"], sample_data("quota_warning"),
                              f"evt_{c['id']}", "usage/warn") for c in customers]
    with db.session() as s:
        results = notify_many(s, [*requests, requests[0]], now=clock.now())
    assert [[r.status for r in rs] for rs in results] == [
        ["pending", "pending"], ["pending", "skipped"], ["pending", "failed"],
        ["duplicate", "duplicate"]]
    assert results[3][0].notification_id == results[0][0].notification_id
    assert len(rows(db)) == 6 and len(events(db, "notification.failed")) == 1
    with pytest.raises(ValueError, match="unknown channel"), db.session() as s:
        notify_many(s, [NotifyRequest({"id": "cus_4"}, "quota_warning", ["in_app"], {}, "e", "r"),
                        NotifyRequest({"id": "cus_5"}, "quota_warning", ["fax"], {}, "e", "r")],
                    now=clock.now())
    assert len(rows(db)) == 6  # a bad request records nothing of the batch
