"""Two delivery runs at once on one database (a worker and the scheduler of a multi-process
deployment) while the test clock jumps: every message goes out exactly once.

Run A claims the due messages and is slow to send the first one (the SMTP server holds it);
meanwhile the test clock jumps 3 days and run B, a separate process's engine on the same
database, looks for due work. A's claim is still alive by the wall clock (its lease is
5 minutes of real time), so B must not take A's messages, however far the test clock went.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest

from engine.clock import TestClock
from engine.messaging import Channels, EmailChannel, deliver_pending, notify
from engine.messaging.samples import sample_data
from engine.store import Database
from tests.smtp import smtp_server

from .conftest import CUSTOMER

pytestmark = pytest.mark.smtp


class HoldingInbox:
    """Accepts every message; holds the first one until `release` is set (without blocking
    the server's loop, so other connections are served meanwhile)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            first = not self.holding.is_set()
            self.holding.set()
        if first:
            for _ in range(1000):  # at most 10 s
                if self.release.is_set():
                    break
                await asyncio.sleep(0.01)
        with self.lock:
            self.ids.append(str(msg["Message-ID"]))
        return "250 OK"


@pytest.fixture
def holding_smtp() -> Iterator[tuple[HoldingInbox, str]]:
    inbox = HoldingInbox()
    with smtp_server(inbox, timeout=15) as url:
        yield inbox, url
        inbox.release.set()


def test_two_runs_on_one_database_send_each_message_once_when_the_clock_jumps(
        db: Database, clock: TestClock, holding_smtp: tuple[HoldingInbox, str]) -> None:
    inbox, url = holding_smtp
    with db.session() as s:
        for i in range(5):
            [r] = notify(s, customer=CUSTOMER, template="payment_failed", channels=["email"],
                         data=sample_data("payment_failed"), event_id=f"evt_{i}",
                         rule_id="dunning/r1", now=clock.now())
            assert r.status == "pending"
    other = Database(db.url)  # the other process: its own engine and connections
    chans_a = Channels([EmailChannel.from_url(url)])
    chans_b = Channels([EmailChannel.from_url(url)])
    reports: dict[str, Any] = {}

    def run_a() -> None:
        reports["a"] = deliver_pending(db, chans_a, now=clock.now(), concurrency=1)

    a = threading.Thread(target=run_a)
    try:
        a.start()
        assert inbox.holding.wait(10), "run A never reached the SMTP server"
        clock.set(clock.now() + timedelta(days=3))  # the test clock jumps meanwhile
        reports["b"] = deliver_pending(other, chans_b, now=clock.now(), concurrency=1)
    finally:
        inbox.release.set()
        a.join(20)
        chans_a.close()
        chans_b.close()
        other.dispose()
    assert not a.is_alive()
    counts = Counter(inbox.ids)
    assert len(counts) == 5, counts
    assert max(counts.values()) == 1, f"sent twice: {counts}"
    assert reports["b"].attempted == 0
    assert reports["a"].sent == 5
