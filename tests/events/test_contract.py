"""The contract both buses keep: the same tests, in-process and over RabbitMQ, on SQLite
and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from events_support import (
    Flaky,
    build_registry,
    effect_counts,
    effects_in_order,
    pending_outbox,
    queue_depth,
    wait_until,
)

from engine.events import Envelope
from engine.store import Database, add_event, new_event_id

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SUBSCRIBERS = {
    "invoice.paid": {"sales", "payments", "messaging"},
    "invoice.finalized": {"sales", "messaging"},
    "payment.card.succeeded": {"payments", "messaging"},
    "access.denied": {"messaging"},
}


def produce(db: Database, events: list[tuple[str, str, int]]) -> list[str]:
    """Commit events the way subsystems do: add_event inside the state change's transaction."""
    ids = []
    with db.session() as session:
        for type_, customer, n in events:
            ids.append(add_event(session, type_, customer, {"n": n}, time=T0).id)
    return ids


def expected_effects(ids_types: list[tuple[str, str]]) -> Counter[tuple[str, str]]:
    want: Counter[tuple[str, str]] = Counter()
    for event_id, type_ in ids_types:
        for subsystem in SUBSCRIBERS.get(type_, set()):
            want[(subsystem, event_id)] = 1
    return want


def test_every_event_reaches_each_subscriber_once_in_customer_order(
    make_harness: Any, db: Database, bus_kind: str
) -> None:
    h = make_harness(db)
    types = list(SUBSCRIBERS)
    plan = [(types[i % len(types)], f"cus_{i % 3}", i) for i in range(120)]
    plan.append(("mystery.event", "cus_9", 999))  # nobody subscribes: not retried, not blocking
    h.start()
    ids = produce(db, plan[:60]) + produce(db, plan[60:])
    want = expected_effects([(i, t) for i, (t, _, _) in zip(ids, plan, strict=True)])
    wait_until(lambda: sum(effect_counts(db).values()) >= sum(want.values()), what="all effects")
    wait_until(lambda: pending_outbox(db) == 0, what="outbox drained")
    h.stop()

    assert Counter(effect_counts(db)) == want
    for subsystem in ("sales", "payments", "messaging"):
        seen: dict[str, int] = {}
        for customer, n in effects_in_order(db, subsystem):
            assert n > seen.get(customer, -1), f"{subsystem}: {customer} out of order"
            seen[customer] = n
    assert h.dead_letters() == {}
    assert h.metrics.get("sales", "applied") == 60
    assert h.metrics.get("messaging", "failed") == 0
    if bus_kind == "inprocess":
        assert h.metrics.get("unrouted", "unhandled") == 1
    else:
        assert h.metrics.get("unrouted", "published") == 1
        assert queue_depth(h.url, h.config.unrouted_queue) == 1


def test_an_event_id_seen_before_has_no_second_effect(make_harness: Any, db: Database) -> None:
    h = make_harness(db)
    env = Envelope(id=new_event_id(), type="invoice.paid", customer_id="cus_1", time=T0, properties={"n": 1})
    h.start()
    h.publish([env])
    h.publish([env])
    produce(db, [("invoice.finalized", "cus_1", 2)])  # a marker that comes after both
    wait_until(lambda: ("sales", env.id) in effect_counts(db), what="first delivery")
    wait_until(lambda: len(effect_counts(db)) == 5, what="the marker event")
    wait_until(
        lambda: (
            sum(h.metrics.get(s, "consumed") for s in SUBSCRIBERS["invoice.paid"])
            >= (6 if h.kind == "rabbitmq" else 3) + 2
        ),
        what="consumption",
    )
    h.stop()
    counts = effect_counts(db)
    assert {k: v for k, v in counts.items() if k[1] == env.id} == {
        ("sales", env.id): 1,
        ("payments", env.id): 1,
        ("messaging", env.id): 1,
    }
    if h.kind == "rabbitmq":  # the broker delivered it twice; the consumer skipped one
        assert h.metrics.get("sales", "duplicates") == 1


def test_a_failing_handler_is_retried_with_delay_then_applied_once(make_harness: Any, db: Database) -> None:
    # A failing attempt calls the handler twice (the batch's fast path, then the event on
    # its own), so 4 failing calls are 2 failed attempts; max_attempts is 3: the third wins.
    flaky = Flaky(failures=4)
    h = make_harness(db, build_registry(flaky))
    h.start()
    [flaky_id, after_id] = produce(db, [("test.flaky", "cus_1", 1), ("test.ok", "cus_1", 2)])
    wait_until(lambda: flaky.seen.get(flaky_id, 0) >= 5, what="third attempt")
    wait_until(lambda: pending_outbox(db) == 0 and h.metrics.get("sales", "applied") >= 2)
    h.stop()
    counts = effect_counts(db)
    # test.flaky: sales' recorder ran once (in the successful attempt), messaging's once
    assert counts[("sales", flaky_id)] == 1
    assert counts[("messaging", flaky_id)] == 1
    assert counts[("sales", after_id)] == 1  # the failing event never blocked the next one
    assert h.metrics.get("sales", "failed") == 2
    assert h.metrics.get("sales", "retried") == 2
    assert h.dead_letters() == {}


def test_a_handler_that_always_fails_ends_dead_lettered_with_its_error(make_harness: Any, db: Database) -> None:
    h = make_harness(db)
    h.start()
    [bad, good] = produce(db, [("test.explode", "cus_1", 1), ("invoice.paid", "cus_1", 2)])
    wait_until(lambda: h.metrics.get("sales", "dead_lettered") == 1, what="dead letter")
    wait_until(lambda: ("payments", good) in effect_counts(db), what="the next event")
    h.stop()
    assert h.metrics.get("sales", "failed") == 3  # max_attempts
    dead = h.dead_letters()
    assert set(dead) == {bad}
    assert "handler exploded on purpose" in dead[bad]
    assert not any(event_id == bad for _, event_id in effect_counts(db))


def test_stopping_and_restarting_mid_stream_loses_and_repeats_nothing(make_harness: Any, db: Database) -> None:
    plan = [("invoice.paid", f"cus_{i % 5}", i) for i in range(300)]
    h1 = make_harness(db)
    h1.start()
    ids = produce(db, plan[:150])
    wait_until(lambda: len(effect_counts(db)) > 30, what="some progress")
    h1.stop()
    ids += produce(db, plan[150:])  # committed while nothing consumes
    h2 = make_harness(db)
    h2.start()
    want = expected_effects([(i, "invoice.paid") for i in ids])
    wait_until(lambda: sum(effect_counts(db).values()) >= len(want), what="all effects")
    wait_until(lambda: pending_outbox(db) == 0, what="outbox drained")
    h2.stop()
    assert Counter(effect_counts(db)) == want
