"""A handler's batch twin (events.BatchHandler): the bus's fast path hands it a subsystem's
batch at once, in order, without the duplicates; one event alone is a batch of one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from engine.events import BatchHandler, Envelope, HandlerRegistry, apply_batch, envelope_from_dict
from engine.store import Database

NOW = datetime(2027, 1, 1, tzinfo=UTC)


def _env(n: int) -> Envelope:
    return envelope_from_dict({"id": f"evt_{n}", "type": "invoice.finalized", "customer_id": f"c{n}",
                               "time": NOW.isoformat(), "properties": {}})


def test_the_fast_path_hands_the_batch_to_the_twin_once_in_order_without_duplicates() -> None:
    db = Database("sqlite://")
    db.migrate()
    calls: list[list[str]] = []

    def many(_session: object, envelopes: Sequence[Envelope]) -> None:
        calls.append([e.id for e in envelopes])

    registry = HandlerRegistry()
    twin = BatchHandler(many, "many")
    registry.register("automation", "#", twin)
    with db.session() as s:
        first = apply_batch(s, "automation", [_env(1), _env(2), _env(1)], registry, NOW)
    with db.session() as s:
        again = apply_batch(s, "automation", [_env(2), _env(3)], registry, NOW)
    twin(None, _env(4))  # one event alone: a batch of one
    assert calls == [["evt_1", "evt_2"], ["evt_3"], ["evt_4"]]
    assert [o.status for o in first] == ["applied", "applied", "duplicate"]
    assert [o.status for o in again] == ["duplicate", "applied"]


def test_each_run_of_the_twins_events_goes_to_it_at_once_between_other_handlers_in_order() -> None:
    # payments: invoice.finalized has a batch twin, subscription.created a plain handler; a
    # bus batch mixes them, and the twin still gets each run of its events at once.
    db = Database("sqlite://")
    db.migrate()
    calls: list[list[str]] = []

    def many(_session: object, envelopes: Sequence[Envelope]) -> None:
        calls.append([e.id for e in envelopes])

    def plain(_session: object, envelope: Envelope) -> None:
        calls.append([f"plain:{envelope.id}"])

    registry = HandlerRegistry()
    registry.register("payments", "invoice.finalized", BatchHandler(many, "many"))
    registry.register("payments", "subscription.created", plain)
    created = envelope_from_dict({"id": "evt_s", "type": "subscription.created", "customer_id": "c",
                                  "time": NOW.isoformat(), "properties": {}})
    with db.session() as s:
        outcomes = apply_batch(s, "payments", [_env(1), _env(2), created, _env(3), _env(4), _env(5)], registry, NOW)
    assert calls == [["evt_1", "evt_2"], ["plain:evt_s"], ["evt_3", "evt_4", "evt_5"]]
    assert [o.status for o in outcomes] == ["applied"] * 6
