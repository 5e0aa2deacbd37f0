"""The sender on its own: backoff over more than 24 hours, then a dead letter; a dead delivery
no longer holds its lane; a disabled endpoint's deliveries wait."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from engine import webhooks
from engine.clock import TestClock
from engine.events import Envelope
from engine.store import Database, mark_processed
from tests.webhooks.receiver import Receiver

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
POLICY = webhooks.UrlPolicy(allow_http=True, allow_private=True)


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    database = Database(f"sqlite:///{tmp_path}/sender.db")
    database.migrate()
    yield database
    database.dispose()


def _publish(db: Database, n: int, customer: str = "cus_1") -> list[str]:
    ids = []
    with db.session() as s:
        for i in range(n):
            env = Envelope(id=f"evt_{customer}_{i}", type="invoice.paid", customer_id=customer, time=T0, properties={})
            mark_processed(s, webhooks.CONSUMER, env.id, T0)  # as the bus does around its consumer
            webhooks.fan_out(s, env)
            ids.append(env.id)
    return ids


def test_backoff_lasts_over_a_day_then_the_delivery_is_dead(db: Database) -> None:
    receiver = Receiver(answer=500)
    try:
        with db.session() as s:
            endpoint = webhooks.create_endpoint(s, receiver.url, ["invoice.*"], now=T0, policy=POLICY)
        [dead_id, next_id] = _publish(db, 2)
        clock = TestClock(T0)
        sender = webhooks.Sender(db, clock, POLICY)
        attempts = 0
        while True:
            report = sender.run_once()
            attempts += report.failed
            if report.dead:
                break
            with db.read_session() as s:
                [head] = [d for d in webhooks.list_deliveries(s, endpoint.id) if d["event_id"] == dead_id]
            clock.set(datetime.fromisoformat(str(head["next_attempt_at"]).replace("Z", "+00:00")))
        assert attempts == len(webhooks.SCHEDULE) + 1
        assert clock.now() - T0 >= timedelta(hours=24)
        with db.read_session() as s:
            log = {d["event_id"]: d for d in webhooks.list_deliveries(s, endpoint.id)}
        assert log[dead_id]["status"] == "dead" and log[dead_id]["response_code"] == 500
        assert log[next_id]["attempts"] == 0  # held behind the first while it was retried
        receiver.answer = 200
        assert sender.drain().delivered == 1  # the dead one no longer holds the lane
        assert [r.id for r in receiver.received] == [next_id]
    finally:
        receiver.stop()


def test_a_disabled_endpoint_keeps_its_deliveries_waiting(db: Database) -> None:
    receiver = Receiver()
    try:
        with db.session() as s:
            endpoint = webhooks.create_endpoint(s, receiver.url, ["invoice.paid"], now=T0, policy=POLICY)
        _publish(db, 1)
        with db.session() as s:
            webhooks.update_endpoint(s, endpoint.id, now=T0, policy=POLICY, enabled=False)
        sender = webhooks.Sender(db, TestClock(T0), POLICY)
        assert sender.drain().delivered == 0
        with db.session() as s:
            webhooks.update_endpoint(s, endpoint.id, now=T0, policy=POLICY, enabled=True)
        assert sender.drain().delivered == 1
    finally:
        receiver.stop()


def test_lanes_of_other_customers_do_not_wait(db: Database) -> None:
    receiver = Receiver()
    try:
        with db.session() as s:
            webhooks.create_endpoint(s, receiver.url, ["*"], now=T0, policy=POLICY)
        ids = _publish(db, 3, "cus_a") + _publish(db, 3, "cus_b")
        assert webhooks.Sender(db, TestClock(T0), POLICY).drain().delivered == 6
        assert [r.id for r in receiver.received] == ids
    finally:
        receiver.stop()


def test_within_a_clock_advance_it_claims_only_while_an_endpoint_is_enabled(db: Database) -> None:
    """A clock advance's stops (Sender.advance) do not claim while no endpoint is enabled;
    enabling one, or registering one, in this process is seen at the next stop."""
    receiver = Receiver()
    claims: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_rest: object) -> None:
        if sql.lstrip().startswith("SELECT event_webhook_deliveries.seq"):
            claims.append(sql)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.session() as s:
            endpoint = webhooks.create_endpoint(s, receiver.url, ["invoice.paid"], now=T0, policy=POLICY)
        _publish(db, 1)
        with db.session() as s:
            webhooks.update_endpoint(s, endpoint.id, now=T0, policy=POLICY, enabled=False)
        sender = webhooks.Sender(db, TestClock(T0), POLICY)
        with sender.advance():
            assert [sender.drain().delivered for _ in range(5)] == [0] * 5
            assert claims == []  # nothing enabled: nothing asked, stop after stop
            with db.session() as s:
                webhooks.update_endpoint(s, endpoint.id, now=T0, policy=POLICY, enabled=True)
            assert sender.drain().delivered == 1
            with db.session() as s:
                webhooks.update_endpoint(s, endpoint.id, now=T0, policy=POLICY, enabled=False)
            assert sender.drain().delivered == 0
            with db.session() as s:
                webhooks.create_endpoint(s, receiver.url, ["invoice.paid"], now=T0, policy=POLICY)
            _publish(db, 1, "cus_2")
            assert sender.drain().delivered == 1
        assert len(receiver.received) == 2
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
        receiver.stop()
