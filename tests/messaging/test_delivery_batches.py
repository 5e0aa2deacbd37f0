"""Delivery in batches: each sender keeps one SMTP connection for its share of a claimed
batch and commits its marks every `record_every` sends. Whatever fails part-way, no
message is marked sent without having been sent, and none marked sent goes out again."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from engine.clock import TestClock
from engine.messaging import Channels, EmailChannel, Notification, deliver_pending, notify
from engine.messaging import delivery as messaging_delivery
from engine.messaging.samples import sample_data
from engine.store import Database, OutboxEvent

from .conftest import CUSTOMER, Inbox, free_port

pytestmark = pytest.mark.smtp


class Picky(Inbox):
    """Accepts every recipient but `soft...` (451, try later) and `hard...` (550, no such
    user), and remembers which connection each accepted message came over."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if address.startswith("soft"):
            return "451 try again later"
        if address.startswith("hard"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def picky() -> Any:
    handler = Picky()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, f"smtp://127.0.0.1:{controller.port}?from=billing@example.com&timeout=5"
    controller.stop()


def record(db: Database, clock: TestClock, addresses: list[str]) -> dict[str, str]:
    """One email per address; returns notification id -> address."""
    ids = {}
    with db.session() as s:
        for i, address in enumerate(addresses):
            [r] = notify(s, customer=dict(CUSTOMER, email=address), template="payment_failed",
                         channels=["email"], data=sample_data("payment_failed"),
                         event_id=f"evt_{i}", rule_id="dunning/r1", now=clock.now())
            assert r.status == "pending" and r.notification_id
            ids[r.notification_id] = address
    return ids


def statuses(db: Database) -> dict[str, str]:
    with db.session() as s:
        return {n.id: n.status for n in s.scalars(select(Notification))}


def sent_events(db: Database) -> Counter[str]:
    with db.session() as s:
        return Counter(e.properties["notification_id"] for e in s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "notification.sent")))


def received_ids(inbox: Inbox) -> Counter[str]:
    # Message-ID is <notification id@sender's domain>.
    return Counter(m["Message-ID"].strip("<>").split("@")[0] for m in inbox.messages)


def test_refusals_in_a_batch_mark_exactly_what_the_server_took(
        db: Database, clock: TestClock, picky: Any) -> None:
    inbox, url = picky
    addresses = [("soft" if i % 5 == 1 else "hard" if i % 7 == 3 else "ok") + f"{i}@example.com"
                 for i in range(24)]
    ids = record(db, clock, addresses)
    channels = Channels([EmailChannel.from_url(url)])
    report = deliver_pending(db, channels, now=clock.now(), concurrency=3, record_every=4)

    got = received_ids(inbox)
    good = {n for n, a in ids.items() if a.startswith("ok")}
    soft = {n for n, a in ids.items() if a.startswith("soft")}
    hard = {n for n, a in ids.items() if a.startswith("hard")}
    assert (report.sent, report.retried, report.failed) == (len(good), len(soft), len(hard))
    assert set(got) == good and max(got.values()) == 1
    st = statuses(db)
    assert {n for n, s in st.items() if s == "sent"} == good
    assert {n for n, s in st.items() if s == "pending"} == soft
    assert {n for n, s in st.items() if s == "failed"} == hard
    assert sent_events(db) == Counter(good)
    # Refused recipients do not cost the connection: three senders, three connections.
    assert len(set(inbox.peers)) <= 3

    # The soft refusals go out on their retry; nothing else is sent again.
    inbox_ok = {n: ids[n].replace("soft", "ok") for n in soft}
    with db.session() as s:
        for n in soft:
            s.get(Notification, n).recipient = inbox_ok[n]  # type: ignore[union-attr]
    clock.set(clock.now() + timedelta(hours=1))
    again = deliver_pending(db, channels, now=clock.now(), concurrency=3, record_every=4)
    channels.close()
    assert again.sent == len(soft)
    assert set(received_ids(inbox)) == good | soft
    assert max(received_ids(inbox).values()) == 1
    assert sent_events(db) == Counter(good | soft)


def test_a_failed_mark_leaves_only_its_group_to_resend(
        db: Database, clock: TestClock, picky: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, url = picky
    ids = record(db, clock, [f"ok{i}@example.com" for i in range(12)])
    real = messaging_delivery.add_events
    calls = 0
    lock = threading.Lock()

    def flaky(session: Any, events: Any) -> int:
        # The database goes away for the second group's marks (the sends already happened).
        nonlocal calls
        with lock:
            calls += 1
            if calls == 2:
                raise RuntimeError("database went away")
        return real(session, events)

    monkeypatch.setattr(messaging_delivery, "add_events", flaky)
    channels = Channels([EmailChannel.from_url(url)])
    with pytest.raises(RuntimeError, match="database went away"):
        deliver_pending(db, channels, now=clock.now(), concurrency=2, record_every=3,
                        wall=clock)  # leases count on the wall clock: here the test's own

    first = received_ids(inbox)
    st = statuses(db)
    marked = {n for n, s in st.items() if s == "sent"}
    limbo = {n for n, s in st.items() if s == "sending"}
    assert marked <= set(first)  # nothing marked sent that the server did not get
    assert set(st) == marked | limbo  # nothing lost: the rest waits for its lease
    assert len(limbo & set(first)) == 3  # only the failed group was sent unmarked
    assert sent_events(db) == Counter(marked)

    monkeypatch.setattr(messaging_delivery, "add_events", real)
    assert deliver_pending(db, channels, now=clock.now(), wall=clock).attempted == 0  # lease holds
    clock.set(clock.now() + timedelta(minutes=6))
    report = deliver_pending(db, channels, now=clock.now(), concurrency=2, record_every=3,
                             wall=clock)
    channels.close()
    assert report.sent == len(limbo)
    assert set(statuses(db).values()) == {"sent"}
    total = received_ids(inbox)
    assert set(total) == set(ids)
    # A message marked sent never went out again; a resent one kept its Message-ID.
    assert all(total[n] == 1 for n in marked)
    assert all(total[n] <= 2 for n in limbo)
    assert sent_events(db) == Counter(list(ids))
