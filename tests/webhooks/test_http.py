"""Product webhooks through their door (admin-scoped HTTP), to a real receiver: every event of
a journey arrives exactly once after dropping copies by webhook-id, each signed by the
Standard Webhooks algorithm; a 500 answer and an outage delay deliveries (backoff on the test
clock) without losing or reordering them; replays; bad input names the field and writes
nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from engine import webhooks
from engine.config import Settings
from engine.store import OutboxEvent
from engine.system import System
from tests.api.conftest import keyed_system, start_server
from tests.webhooks.receiver import Receiver


@dataclass
class Engine:
    system: System
    admin: httpx.Client
    product: httpx.Client

    def register(self, url: str, event_types: list[str]) -> dict[str, object]:
        r = self.admin.post(
            "/v1/webhook-endpoints", json={"url": url, "event_types": event_types, "description": "the product"}
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def subscribe(self, customer_id: str) -> None:
        """A new customer on pro (its trial ends in a month)."""
        r = self.admin.post(
            "/v1/customers",
            json={"id": customer_id, "email": f"{customer_id}@example.com", "name": customer_id, "country": "DE"},
        )
        assert r.status_code == 201, r.text
        r = self.admin.post("/v1/subscriptions", json={"customer_id": customer_id, "plan": "pro"})
        assert r.status_code == 201, r.text

    def advance(self, by: str) -> None:
        r = self.admin.post("/v1/clock/advance", json={"by": by})
        assert r.status_code == 200, r.text

    def log(self, endpoint_id: object, **params: object) -> list[dict[str, object]]:
        r = self.admin.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def published(self, after_seq: int = 0) -> list[tuple[str, str]]:
        """(id, type) of every deliverable event the engine published, in order."""
        with self.system.db.read_session() as s:
            rows = s.execute(
                select(OutboxEvent.id, OutboxEvent.type)
                .where(OutboxEvent.seq > after_seq, OutboxEvent.type.in_(webhooks.EVENT_TYPES))
                .order_by(OutboxEvent.seq)
            )
            return [(r[0], r[1]) for r in rows]

    def last_seq(self) -> int:
        with self.system.db.read_session() as s:
            return int(s.scalar(select(OutboxEvent.seq).order_by(OutboxEvent.seq.desc()).limit(1)) or 0)


def _engine(tmp_path, **extra: object) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/hooks.db",
        test_clock="2026-11-01T09:00:00Z",
        access_denial_buffer_ms=0,
        **extra,
    )
    system, admin, product = keyed_system(settings)
    stop = threading.Event()
    system.start_workers(stop)
    server, thread, url = start_server(system)
    with (
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=60) as a,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {product}"}, timeout=60) as p,
    ):
        yield Engine(system, a, p)
    server.should_exit = True
    thread.join(10)
    stop.set()
    system.db.dispose()


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    # The receiver is a local plain-http server: allowed here explicitly, refused by default.
    yield from _engine(tmp_path, webhooks_allow_http=True, webhooks_allow_private=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def test_every_event_of_a_journey_arrives_once_signed(engine: Engine, receiver: Receiver) -> None:
    endpoint = engine.register(receiver.url, ["*"])
    secret = str(endpoint["secret"])
    start = engine.last_seq()
    engine.subscribe("cus_w")
    engine.advance("1mo")  # the trial ends, the first invoice is finalized
    published = engine.published(start)
    types = [t for _, t in published]
    assert {"customer.created", "subscription.created", "invoice.finalized"} <= set(types), types
    got = receiver.wait_for({i for i, _ in published})
    assert set(got) == {i for i, _ in published}  # nothing more, nothing less
    for event_id, event_type in published:
        body = got[event_id].verify(secret)  # the Standard Webhooks check of the product
        assert body["id"] == event_id and body["type"] == event_type and body["customer_id"] == "cus_w"
    # In order for the customer: the order the engine published them in.
    assert [r.id for r in receiver.received if r.id in got] == [i for i, _ in published]
    log = engine.log(endpoint["id"])
    assert {d["status"] for d in log} == {"delivered"} and all(d["response_code"] == 200 for d in log)
    assert all(isinstance(d["latency_ms"], int) and d["attempts"] == 1 for d in log)


def _first_attempt(engine: Engine, endpoint_id: str) -> dict[str, object]:
    until = time.monotonic() + 20
    while True:
        log = engine.log(endpoint_id)  # empty until the event has fanned out to the endpoint
        if (log and log[0]["attempts"]) or time.monotonic() > until:
            [delivery] = log
            return delivery
        time.sleep(0.05)


def test_a_500_and_an_outage_delay_deliveries_in_order(engine: Engine, receiver: Receiver) -> None:
    endpoint = engine.register(receiver.url, ["customer.*", "subscription.created"])
    receiver.answer = 500
    engine.admin.post("/v1/customers", json={"id": "cus_x", "email": "x@example.com", "name": "X", "country": "DE"})
    engine.system.webhooks.drain()  # type: ignore[union-attr]
    # The workers' sender thread may hold the delivery when drain looks (it then claims
    # nothing): wait for the attempt to be recorded, whoever made it.
    first = _first_attempt(engine, str(endpoint["id"]))
    assert (first["status"], first["attempts"], first["response_code"]) == ("pending", 1, 500)
    # The receiver goes down; the customer's next event waits behind the first one.
    receiver.answer = 200
    receiver.stop()
    r = engine.admin.post("/v1/subscriptions", json={"customer_id": "cus_x", "plan": "pro"})
    assert r.status_code == 201
    engine.advance("1m")  # the first retry (5 s later on the test clock) meets the outage
    engine.system.webhooks.drain()  # type: ignore[union-attr]
    log = {d["event_type"]: d for d in engine.log(endpoint["id"])}
    assert log["customer.created"]["attempts"] == 2 and log["customer.created"]["response_code"] is None
    assert log["subscription.created"]["attempts"] == 0  # never sent ahead of the first
    assert receiver.received == []
    receiver.start()
    engine.advance("1h")  # past the next wait (5 min): both go, in order
    published = engine.published()
    ids = [
        i
        for i, t in published
        if t in ("customer.created", "subscription.created") and i in {d["event_id"] for d in log.values()}
    ]
    receiver.wait_for(set(ids))
    assert [r.id for r in receiver.received] == ids
    log = {d["event_type"]: d for d in engine.log(endpoint["id"])}
    assert log["customer.created"]["status"] == "delivered" and log["customer.created"]["attempts"] == 3


def test_replay_of_one_delivery_and_of_a_time_range(engine: Engine, receiver: Receiver) -> None:
    endpoint = engine.register(receiver.url, ["customer.created"])
    for n in range(3):
        engine.admin.post(
            "/v1/customers", json={"id": f"cus_r{n}", "email": f"r{n}@example.com", "name": "R", "country": "DE"}
        )
    receiver.wait_for({i for i, t in engine.published()})
    first = engine.log(endpoint["id"])[-1]
    r = engine.admin.post(f"/v1/webhook-deliveries/{first['id']}/replay")
    assert r.status_code == 201 and r.json()["replay_of"] == first["id"], r.text
    r = engine.admin.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/replay",
        json={"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"},
    )
    assert r.status_code == 201 and len(r.json()["items"]) == 3
    until = time.monotonic() + 20
    while len(receiver.received) < 3 + 1 + 3 and time.monotonic() < until:
        time.sleep(0.05)
    assert len(receiver.received) == 7
    assert len(receiver.unique()) == 3  # a replay carries the same webhook-id: the product drops it if it had it
    assert [r.id for r in receiver.received].count(first["event_id"]) == 3
    assert {d["status"] for d in engine.log(endpoint["id"])} == {"delivered"}


def test_a_rotated_secret_signs_beside_the_old_one(engine: Engine, receiver: Receiver) -> None:
    endpoint = engine.register(receiver.url, ["customer.created"])
    r = engine.admin.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json={"grace_hours": 24})
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != endpoint["secret"]
    engine.admin.post("/v1/customers", json={"id": "cus_rot", "email": "rot@example.com", "name": "R", "country": "DE"})
    [(_, got)] = receiver.wait_for({i for i, _ in engine.published()}).items()
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert got.verify(str(endpoint["secret"]))["customer_id"] == "cus_rot"
    assert got.verify(new)["customer_id"] == "cus_rot"


def test_bad_input_names_the_field_and_writes_nothing(engine: Engine) -> None:
    cases = [
        ({"url": "https://example.com/h", "event_types": ["invoice.paid", "invoice.payed"]}, "event_types[1]"),
        ({"url": "https://example.com/h", "event_types": ["usage.recorded"]}, "event_types[0]"),
        ({"url": "ftp://example.com/h", "event_types": ["*"]}, "url"),
    ]
    for body, field in cases:
        r = engine.admin.post("/v1/webhook-endpoints", json=body)
        assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
    r = engine.admin.post("/v1/webhook-deliveries/wd_nothing/replay")
    assert r.status_code == 404 and r.json()["field"] == "delivery_id"
    r = engine.admin.get("/v1/webhook-endpoints/we_nothing/deliveries")
    assert r.status_code == 404 and r.json()["field"] == "endpoint_id"
    assert engine.admin.get("/v1/webhook-endpoints").json()["items"] == []
    # A product key cannot register endpoints.
    r = engine.product.post("/v1/webhook-endpoints", json={"url": "https://example.com/h", "event_types": ["*"]})
    assert r.status_code == 403


@pytest.fixture
def strict(tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    yield from _engine(tmp_path)


def test_by_default_only_public_https_endpoints(strict: Engine, receiver: Receiver) -> None:
    r = strict.admin.post("/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["*"]})
    assert r.status_code == 422 and r.json()["field"] == "url" and "https" in r.json()["detail"]
    https_loopback = receiver.url.replace("http://", "https://")
    r = strict.admin.post("/v1/webhook-endpoints", json={"url": https_loopback, "event_types": ["*"]})
    assert r.status_code == 422 and r.json()["field"] == "url" and "127.0.0.1" in r.json()["detail"]
    assert strict.admin.get("/v1/webhook-endpoints").json()["items"] == []


# The keys of an invoice as the product reads it, in the order the JSON gives them: the event's
# properties (engine.sales.invoice_views, then what finalize adds) and the API's invoice.
EVENT_KEYS = ["invoice_id", "number", "customer_id", "subscription_id", "status", "reason", "currency",
              "subtotal", "discount", "tax", "total", "credit_applied", "amount_due", "period_start", "period_end",
              "plan", "issued_at", "payment_method", "tax_country", "lines"]  # fmt: skip
SUMMARY_KEYS = ["id", "number", "customer_id", "subscription_id", "status", "reason", "currency", "plan", "period",
                "subtotal", "discount", "discounts", "tax", "tax_rate", "tax_country", "reverse_charge", "total",
                "credit_applied", "amount_credited", "amount_due", "amount_paid", "issued_at", "paid_at"]  # fmt: skip


def test_an_invoice_keeps_its_key_order_in_the_webhook_and_the_api(engine: Engine, receiver: Receiver) -> None:
    engine.register(receiver.url, ["invoice.finalized"])
    start = engine.last_seq()
    engine.subscribe("cus_k")
    engine.advance("1mo")  # the trial ends, the first invoice is finalized
    [event_id] = [i for i, t in engine.published(start) if t == "invoice.finalized"]
    assert list(receiver.wait_for({event_id})[event_id].json()["properties"]) == EVENT_KEYS
    [listed] = engine.admin.get("/v1/customers/cus_k/invoices").json()["items"]
    assert list(listed) == SUMMARY_KEYS
    one = engine.admin.get(f"/v1/invoices/{listed['id']}").json()
    assert list(one) == [*SUMMARY_KEYS, "lines", "payments", "credit_notes", "refunds", "collection"]
