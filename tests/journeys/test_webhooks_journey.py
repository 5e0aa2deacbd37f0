"""The product's webhooks in a money journey, in both shapes: the operator registers an
endpoint over HTTP; the product's receiver (a real server of the test) gets every event of
the customer exactly once after dropping copies by webhook-id, each verified with the
Standard Webhooks package, across a receiver outage; then a replay. The ledger check follows
(conftest)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.journeys.harness import Engine
from tests.webhooks.receiver import Received, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def _of(receiver: Receiver, customer: str) -> dict[str, Received]:
    return {i: r for i, r in receiver.unique().items() if r.json()["customer_id"] == customer}


def _wait(what: str, probe: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def test_the_product_receives_every_event_of_a_signup_and_a_renewal(engine: Engine, receiver: Receiver) -> None:
    endpoint = engine.post("/v1/webhook-endpoints", {"url": receiver.url, "description": "the product",
                                                     "event_types": ["customer.*", "subscription.*", "invoice.*",
                                                                     "payment.*"]}, status=201)
    try:
        cid = engine.customer("hooks")
        engine.subscribe(cid, "pro", payment_method={"type": "card", "token": "4242424242424242"})
        engine.advance("1h")
        _wait("the signup's events", lambda: {"customer.created", "subscription.created", "invoice.paid"}
              <= {r.json()["type"] for r in _of(receiver, cid).values()})
        receiver.stop()  # an outage across the renewal: deliveries wait, nothing is lost
        engine.advance("1mo")
        receiver.start()
        engine.advance("1h")  # past the backoff's next attempts
        log = [d for d in engine.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", limit=1000)["items"]
               if d["customer_id"] == cid]
        _wait("every delivery", lambda: {d["event_id"] for d in log} <= set(_of(receiver, cid)))
        got = _of(receiver, cid)
        assert set(got) == {d["event_id"] for d in log}  # exactly the engine's, each once after dedup
        types = [got[d["event_id"]].verify(endpoint["secret"])["type"] for d in reversed(log)]
        assert types.count("invoice.paid") == 2 and "subscription.renewed" in types, types
        # A replay of the first invoice's payment reaches the product again, with the same id.
        paid = next(d for d in reversed(log) if d["event_type"] == "invoice.paid")
        engine.post(f"/v1/webhook-deliveries/{paid['id']}/replay", status=201)
        _wait("the replay", lambda: [r.id for r in receiver.received].count(paid["event_id"]) >= 2)
    finally:
        engine.admin.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": False})
