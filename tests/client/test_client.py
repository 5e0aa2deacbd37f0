"""engine.client against a real server: typed answers, events batched and retried with the
same ids (stored once), problems naming the field, and the access cache: held decisions, events
that drop them, polling, and the declared answer per feature when the engine is unreachable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import httpx
import pytest

from engine.client import AccessCache, BillingClient, BillingError, EngineUnavailable, Event, RetryPolicy
from tests.api.conftest import Running

FAST = RetryPolicy(attempts=3, backoff=0.01)


class Flaky(httpx.BaseTransport):
    """The real server behind a network that can fail: `down` refuses every connection;
    `lose_answers` sends a request through but loses its answer (the engine did the work)."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.down = False
        self.lose_answers = 0
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        self.sent.append(request)
        response = self.real.handle_request(request)
        if self.lose_answers:
            self.lose_answers -= 1
            response.read()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


@pytest.fixture
def network() -> Flaky:
    return Flaky()


@pytest.fixture
def admin(running: Running, network: Flaky) -> Iterator[BillingClient]:
    http = httpx.Client(base_url=running.url, transport=network, timeout=30)
    with BillingClient(running.url, running.admin, retry=FAST, batch_size=2, http=http) as client:
        yield client


def engine_now(running: Running) -> datetime:
    """The engine's test clock: usage is counted in the period it falls in."""
    return datetime.fromisoformat(httpx.get(f"{running.url}/health").json()["time"])


def customer(client: BillingClient, cid: str, plan: str = "free") -> None:
    client.customers.create(f"{cid}@example.com", cid.title(), id=cid, country="DE")
    client.subscriptions.create(cid, plan)


def test_events_go_in_batches_and_a_lost_answer_is_sent_again_with_the_same_ids(
        admin: BillingClient, network: Flaky, running: Running) -> None:
    customer(admin, "cus_ev")
    events = [Event("api.request", "cus_ev", time=engine_now(running)) for _ in range(5)]
    network.lose_answers = 1  # the first batch is stored, its answer lost: sent again
    report = admin.events.send(events)
    batches = [r for r in network.sent if r.url.path == "/v1/events"]
    assert len(batches) == 4  # 2 + 2 + 1, the first twice
    assert batches[0].content == batches[1].content  # the same ids
    assert (report.received, report.accepted, report.duplicates) == (5, 3, 2)
    again = admin.events.send(events)
    assert (again.accepted, again.duplicates) == (0, 5)
    decision = admin.access.check("cus_ev", "api")
    assert decision.used == 5 and decision.source == "engine"  # each event counted once


def test_typed_answers_and_problems_naming_the_field(admin: BillingClient) -> None:
    customer(admin, "cus_ty", plan="pro")
    found = admin.customers.get("cus_ty")
    assert found.id == "cus_ty" and [s["plan"] for s in found.subscriptions] == ["pro"]
    quote = admin.quotes.plan("pro", quantity=3)
    assert quote.currency == "USD" and quote.total == quote.subtotal - quote.discount + quote.tax
    assert isinstance(quote.total, Decimal) and quote.total == Decimal("79.00")  # 49.00 + 3 x 10.00
    with pytest.raises(BillingError) as caught:
        admin.customers.create("not an address", "X")
    assert (caught.value.status, caught.value.field) == (422, "email")
    with pytest.raises(BillingError) as caught:
        admin.subscriptions.create("cus_nobody", "pro")
    assert (caught.value.status, caught.value.field) == (404, "customer_id")
    with pytest.raises(BillingError) as caught:  # payment methods: tests/journeys/test_client_journey.py
        admin.payment_methods.attach("cus_ty", "4242424242424242")
    assert (caught.value.status, caught.value.field) == (404, "provider")


def test_an_operator_pauses_and_resumes_through_the_client(admin: BillingClient) -> None:
    admin.customers.create("cus_pa@example.com", "cus_pa", id="cus_pa")
    sub = admin.subscriptions.create("cus_pa", "pro", trial_days=0).model_dump()
    paused = admin.subscriptions.pause(sub["id"])
    assert (paused.status, (paused.model_extra or {})["pause_at_period_end"]) == ("active", True)
    resumed = admin.subscriptions.resume(sub["id"])  # before it took effect: withdrawn
    assert (resumed.status, (resumed.model_extra or {})["pause_at_period_end"]) == ("active", False)
    with pytest.raises(BillingError) as caught:
        admin.subscriptions.resume(sub["id"])
    assert (caught.value.status, caught.value.field) == (409, "subscription_id")


def test_a_product_key_reaches_events_checks_and_quotes_only(running: Running) -> None:
    with BillingClient(running.url, running.product, retry=FAST) as product:
        assert product.access.check("cus_unknown", "api").reason == "no_customer"
        with pytest.raises(BillingError) as caught:
            product.customers.get("cus_unknown")
        assert caught.value.status == 403


def test_the_cache_holds_decisions_until_an_event_or_a_poll_and_fails_as_declared(
        admin: BillingClient, network: Flaky, running: Running) -> None:
    customer(admin, "cus_ca")
    now = [0.0]
    cache = AccessCache(admin.access, ttl=30, stale_for=60, policies={"api": "open"}, default="closed",
                        clock=lambda: now[0])
    assert cache.check("cus_ca", "sso").allowed is False  # free has no SSO
    assert cache.check("cus_ca", "sso").source == "cache"
    sub = admin.customers.get("cus_ca").subscriptions[0]
    admin.subscriptions.change(sub["id"], plan="enterprise")
    assert cache.check("cus_ca", "sso").allowed is False  # held: the cache has not heard yet
    cache.on_event({"type": "subscription.changed", "customer_id": "cus_ca", "properties": {}})
    upgraded = cache.check("cus_ca", "sso")
    assert (upgraded.allowed, upgraded.source) == (True, "engine")

    cache.check("cus_ca", "api")
    admin.events.send([Event("api.request", "cus_ca", time=engine_now(running))])
    assert cache.refresh() == 2  # polling: both questions asked again in one call
    assert cache.check("cus_ca", "api").used == 1

    network.down = True
    now[0] = 40  # past the ttl: the engine is asked, cannot be reached, the held answer serves
    stale = cache.check("cus_ca", "sso")
    assert (stale.allowed, stale.source) == (True, "stale")
    assert cache.refresh() == 0
    now[0] = 100  # past stale_for: the declared policy answers
    assert (cache.check("cus_ca", "api").allowed, cache.check("cus_ca", "api").source) == (True, "policy")
    closed = cache.check("cus_ca", "sso")
    assert (closed.allowed, closed.reason, closed.source) == (False, "engine_unreachable", "policy")
    with pytest.raises(EngineUnavailable):
        admin.access.check("cus_ca", "sso")  # without the cache, the caller decides
    network.down = False
    assert cache.check("cus_ca", "sso").source == "engine"


def test_a_policy_must_be_open_or_closed(admin: BillingClient) -> None:
    with pytest.raises(ValueError, match=r"policies\[api\]"):
        AccessCache(admin.access, policies={"api": "maybe"})  # type: ignore[dict-item]


def test_a_signed_webhook_drops_the_customers_decisions_and_a_tampered_one_is_refused(admin: BillingClient) -> None:
    import base64
    import json
    from datetime import UTC

    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    customer(admin, "cus_wh")
    secret = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes....").decode()
    cache = AccessCache(admin.access, ttl=3600)
    cache.check("cus_wh", "sso")
    body = json.dumps({"id": "evt_1", "type": "subscription.changed", "customer_id": "cus_wh",
                       "time": "2026-11-01T09:00:00Z", "properties": {}}).encode()
    now = datetime.now(UTC)
    signed = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())),
              "webhook-signature": Webhook(secret).sign("msg_1", now, body.decode())}
    with pytest.raises(WebhookVerificationError):
        cache.on_webhook(signed, body.replace(b"cus_wh", b"cus_xx"), secret)
    assert cache.check("cus_wh", "sso").source == "cache"  # the tampered one dropped nothing
    assert cache.on_webhook(signed, body, secret)["customer_id"] == "cus_wh"
    assert cache.check("cus_wh", "sso").source == "engine"
