"""When the next message is due, as a process knows it within a clock advance
(engine/messaging/due.py): looked up once, then followed through what `notify` writes; any
other write of a notification makes it look again. On both backends (PostgreSQL's `notify`
of one message writes through the driver's cursor, which no session event sees)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import update

from engine.clock import TestClock
from engine.messaging import DueWatch, NotifyRequest, notify, notify_many, retry_dead_letter
from engine.messaging import models as m
from engine.messaging.models import Notification
from engine.messaging.samples import sample_data
from engine.store import Database

from .conftest import CUSTOMER

CHANNELS = ("email", "in_app")  # the configured ones: not sms


@contextmanager
def looks(db: Database) -> Iterator[Counter[str]]:
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        if " ".join(sql.split()).startswith("SELECT notifications.status, notifications.channel, min("):
            seen["looks"] += 1

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def _request(event_id: str, channels: list[str], **kw: Any) -> NotifyRequest:
    return NotifyRequest(
        customer=CUSTOMER,
        template="payment_failed",
        channels=channels,
        data=sample_data("payment_failed"),
        event_id=event_id,
        rule_id="r",
        **kw,
    )


def test_within_an_advance_it_looks_once_and_follows_what_notify_writes(db: Database, clock: TestClock) -> None:
    watch = DueWatch(db)
    t0 = clock.now()
    with looks(db) as seen, watch.advance():
        assert not watch.may_be_due(t0, CHANNELS)  # nothing recorded: one look
        with db.session() as s:  # one message: PostgreSQL's single-statement path
            notify(
                s,
                customer=CUSTOMER,
                template="payment_failed",
                channels=["email"],
                data=sample_data("payment_failed"),
                event_id="evt_1",
                rule_id="r",
                now=t0 + timedelta(hours=2),
            )
        assert not watch.may_be_due(t0 + timedelta(hours=1), CHANNELS)
        assert watch.may_be_due(t0 + timedelta(hours=2), CHANNELS)
        with db.session() as s:  # several: one INSERT of them all
            notify_many(s, [_request("evt_2", ["in_app"]), _request("evt_3", ["sms"])], now=t0 + timedelta(hours=1))
        assert watch.may_be_due(t0 + timedelta(hours=1), CHANNELS)  # the in-app message
        assert not watch.may_be_due(t0 + timedelta(minutes=59), CHANNELS)
        assert not watch.may_be_due(t0 + timedelta(minutes=59), ["sms"])
        assert watch.may_be_due(t0 + timedelta(hours=1), ["sms"])
        assert seen["looks"] == 1  # what notify wrote is known without looking
    assert watch.may_be_due(t0, CHANNELS)  # outside an advance: always asked


def test_a_write_it_cannot_follow_makes_it_look_again(db: Database, clock: TestClock) -> None:
    watch = DueWatch(db)
    t0 = clock.now()
    with db.session() as s:
        notify(
            s,
            customer=CUSTOMER,
            template="payment_failed",
            channels=["email"],
            data=sample_data("payment_failed"),
            event_id="evt_dead",
            rule_id="r",
            now=t0,
        )
        s.execute(update(Notification).values(status=m.DEAD))  # as a delivery run that gave up
    with looks(db) as seen, watch.advance():
        assert not watch.may_be_due(t0 + timedelta(days=1), CHANNELS)
        with db.session() as s:
            (dead,) = s.scalars(sa.select(Notification.id))
            assert retry_dead_letter(s, dead, now=t0 + timedelta(hours=3))  # an UPDATE: not followed
        assert watch.may_be_due(t0 + timedelta(hours=3), CHANNELS)
        assert seen["looks"] == 2
        with db.session() as s:  # an ORM change of a row: looked at again too
            row = s.get(Notification, dead)
            assert row is not None
            row.status = m.SENDING
        assert watch.may_be_due(t0, CHANNELS)  # being sent: a dead run's lease may end
        assert seen["looks"] == 3
        watch.forget()  # what a delivery run does after it ran
        assert watch.may_be_due(t0, CHANNELS)
        assert seen["looks"] == 4


def test_an_ended_digest_window_is_due_whatever_its_channel(db: Database, clock: TestClock) -> None:
    watch = DueWatch(db)
    t0 = clock.now()
    with watch.advance():
        assert not watch.may_be_due(t0, CHANNELS)
        with db.session() as s:
            notify(
                s,
                customer=CUSTOMER,
                template="payment_failed",
                channels=["sms"],
                digest=timedelta(hours=1),
                data=sample_data("payment_failed"),
                event_id="evt_digest",
                rule_id="r",
                now=t0,
            )
        assert not watch.may_be_due(t0 + timedelta(minutes=30), CHANNELS)
        assert watch.may_be_due(t0 + timedelta(hours=1), CHANNELS)  # closing the window makes a message
