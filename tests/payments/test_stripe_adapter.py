"""The Stripe adapter on the official SDK, against a local server that answers like Stripe's
API (tests/payments/fake_stripe.py): what the SDK sends (idempotency key, amount in minor
units, currency, our key in the metadata), how answers map onto our states, timeouts and
replays, refunds, lookups; webhooks verified by `stripe.Webhook.construct_event` with
signatures computed here; and collection through PaymentService as with the sandbox.
Nothing here talks to Stripe itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from engine.clock import SystemClock
from engine.payments import (
    ChargeRequest,
    CollectableInvoice,
    PaymentService,
    PaymentState,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    RefundRequest,
    StripeAdapter,
    WebhookRejected,
    add_payment_method,
    apply_webhook,
    collect_invoice,
    refund_payment,
)
from engine.payments.models import Payment
from engine.payments.stripe_adapter import map_intent, to_minor
from engine.store import Database
from tests.payments import fake_stripe
from tests.payments.conftest import Server, events, new_id
from tests.payments.fake_stripe import FakeStripe, create_fake_stripe, signed

SECRET = "whsec_stripe_test"


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeStripe, Server]]:
    state = FakeStripe()
    server = Server(create_fake_stripe(state)).start()
    yield state, server
    server.stop()


@pytest.fixture
def stripe_adapter(fake: tuple[FakeStripe, Server]) -> StripeAdapter:
    return StripeAdapter("sk_test_local", webhook_secret=SECRET, api_base=fake[1].url, timeout=5.0,
                         max_network_retries=0)


def request(pm: str, amount: str = "49.90", currency: str = "CHF", key: str | None = None) -> ChargeRequest:
    return ChargeRequest(idempotency_key=key or f"{new_id('inv')}:1", amount=Decimal(amount), currency=currency,
                         customer_id="cus_1", method_type="card", token=pm,
                         metadata={"invoice_id": "inv_x", "attempt": "1"})


def test_charge_sends_key_minor_units_and_currency(fake: tuple[FakeStripe, Server],
                                                   stripe_adapter: StripeAdapter) -> None:
    state, _ = fake
    req = request("cus_stripe1:pm_card_visa", "49.90", "CHF")
    out = stripe_adapter.charge(req)
    sent = state.posts("/v1/payment_intents")[-1]
    assert sent.headers["idempotency-key"] == req.idempotency_key
    assert sent.headers["authorization"] == "Bearer sk_test_local"
    assert (sent.form["amount"], sent.form["currency"]) == ("4990", "chf")
    assert (sent.form["payment_method"], sent.form["customer"]) == ("pm_card_visa", "cus_stripe1")
    assert (sent.form["confirm"], sent.form["off_session"]) == ("true", "true")
    assert sent.form["metadata[idempotency_key]"] == req.idempotency_key
    assert (out.state, out.amount, out.currency) == (PaymentState.SUCCEEDED, Decimal("49.90"), "CHF")
    assert out.provider_ref and out.provider_ref.startswith("pi_") and out.idempotency_key == req.idempotency_key


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("1234", "JPY", 1234), ("12.340", "KWD", 12340), ("5", "ISK", 500), ("0.05", "USD", 5),
])
def test_minor_units_follow_stripe(amount: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(amount), currency) == minor


def test_an_amount_stripe_cannot_carry_is_refused_before_sending(
        fake: tuple[FakeStripe, Server], stripe_adapter: StripeAdapter) -> None:
    before = len(fake[0].requests)
    with pytest.raises(ProviderRejected, match="amount_too_precise"):
        stripe_adapter.charge(request("pm_card_visa", "12.345", "KWD"))  # Stripe wants KWD in 10s of fils
    assert len(fake[0].requests) == before


@pytest.mark.parametrize(("pm", "decline", "retryable"), [
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", True),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card", False),
    ("pm_card_chargeDeclined", "generic_decline", False),
    ("pm_card_authenticationRequired", "authentication_required", False),
])
def test_declines_map_to_our_codes(stripe_adapter: StripeAdapter, pm: str, decline: str, retryable: bool) -> None:
    out = stripe_adapter.charge(request(pm))
    assert (out.state, out.decline_code, out.retryable) == (PaymentState.FAILED, decline, retryable)
    assert out.provider_ref and out.provider_ref.startswith("pi_")


@pytest.mark.parametrize(("pm", "raw"), [("pm_card_processing", "processing"),
                                         ("pm_card_newStatus", "requires_quantum_review")])
def test_unsettled_and_unknown_statuses_are_pending_never_success(stripe_adapter: StripeAdapter, pm: str,
                                                                  raw: str) -> None:
    out = stripe_adapter.charge(request(pm))
    assert (out.state, out.raw_status, out.decline_code) == (PaymentState.PENDING, raw, None)


@pytest.mark.parametrize(("body", "state"), [
    ({"status": "succeeded"}, PaymentState.SUCCEEDED),
    ({"status": "canceled"}, PaymentState.FAILED),
    ({"status": "requires_payment_method"}, PaymentState.PENDING),  # no error: not confirmed yet
    ({"status": "requires_payment_method", "last_payment_error": {"decline_code": "insufficient_funds"}},
     PaymentState.FAILED),
    ({"status": "succeeded", "latest_charge": {"refunded": True, "amount_refunded": 1000}}, PaymentState.REFUNDED),
    ({"status": "requires_action"}, PaymentState.PENDING),
    ({"status": None}, PaymentState.PENDING),
])
def test_intent_status_mapping(body: dict[str, Any], state: PaymentState) -> None:
    out = map_intent({"id": "pi_1", "amount": 1000, "currency": "eur", **body})
    assert out.state is state


def test_timeout_then_lookup_and_replay_charge_once(fake: tuple[FakeStripe, Server]) -> None:
    state, server = fake
    impatient = StripeAdapter("sk_test_local", webhook_secret=SECRET, api_base=server.url,
                              timeout=fake_stripe.SLOW_SECONDS / 3, max_network_retries=0)
    req = request("pm_slow")
    with pytest.raises(ProviderTimeout):
        impatient.charge(req)
    time.sleep(fake_stripe.SLOW_SECONDS)  # Stripe finished it meanwhile
    patient = StripeAdapter("sk_test_local", webhook_secret=SECRET, api_base=server.url, timeout=5.0,
                            max_network_retries=0)
    found = patient.lookup(req.idempotency_key)
    assert found is not None and found.state is PaymentState.SUCCEEDED
    again = patient.charge(req)  # the same key: Stripe replays the first answer
    assert again.provider_ref == found.provider_ref
    made = [i for i in state.intents.values() if i["metadata"]["idempotency_key"] == req.idempotency_key]
    assert len(made) == 1
    assert patient.lookup(f"{new_id('inv')}:1") is None


def test_same_key_other_body_server_error_and_bad_key(fake: tuple[FakeStripe, Server],
                                                      stripe_adapter: StripeAdapter) -> None:
    req = request("pm_card_visa", "10.00")
    stripe_adapter.charge(req)
    with pytest.raises(ProviderRejected) as err:
        stripe_adapter.charge(request("pm_card_visa", "11.00", key=req.idempotency_key))
    assert err.value.code == "idempotency_conflict"
    with pytest.raises(ProviderError):  # a 500 leaves the outcome unknown: look it up later
        stripe_adapter.charge(request("pm_server_error"))
    wrong = StripeAdapter("rk_live_nope", webhook_secret=SECRET, api_base=fake[1].url, max_network_retries=0)
    with pytest.raises(ProviderRejected):
        wrong.charge(request("pm_card_visa"))


def test_refund_partial_then_too_much_and_lookup(fake: tuple[FakeStripe, Server],
                                                 stripe_adapter: StripeAdapter) -> None:
    charged = stripe_adapter.charge(request("pm_card_visa", "30.00"))
    assert charged.provider_ref
    key = new_id("refund")
    out = stripe_adapter.refund(RefundRequest(key, charged.provider_ref, Decimal("12.50"), "CHF", "goodwill"))
    sent = fake[0].posts("/v1/refunds")[-1]
    assert (sent.headers["idempotency-key"], sent.form["amount"], sent.form["payment_intent"]) == (
        key, "1250", charged.provider_ref)
    assert (out.state, out.amount, out.payment_provider_ref) == (PaymentState.SUCCEEDED, Decimal("12.50"),
                                                                 charged.provider_ref)
    found = stripe_adapter.lookup_refund(key)
    assert found is not None and found.provider_ref == out.provider_ref
    assert stripe_adapter.lookup_refund(new_id("refund")) is None
    with pytest.raises(ProviderRejected) as err:
        stripe_adapter.refund(RefundRequest(new_id("refund"), charged.provider_ref, Decimal("20.00"), "CHF"))
    assert err.value.code == "amount_too_large"


# --- webhooks ---------------------------------------------------------------------------------


def intent_event(intent_id: str, status: str, key: str, event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or new_id("evt"), "object": "event", "type": f"payment_intent.{status}",
            "created": int(time.time()), "api_version": "2024-06-20", "livemode": False,
            "data": {"object": {"id": intent_id, "object": "payment_intent", "amount": 4990, "currency": "chf",
                                "status": status, "created": int(time.time()),
                                "metadata": {"idempotency_key": key}}}}


def test_webhook_verified_with_the_sdk(stripe_adapter: StripeAdapter) -> None:
    headers, body = signed(intent_event("pi_9", "succeeded", "inv_9:1"), SECRET)
    event = stripe_adapter.parse_webhook(headers, body)
    assert event.payment is not None
    assert (event.payment.state, event.payment.provider_ref, event.payment.idempotency_key,
            event.payment.amount) == (PaymentState.SUCCEEDED, "pi_9", "inv_9:1", Decimal("49.90"))
    refund = {"id": new_id("evt"), "object": "event", "type": "refund.updated", "created": int(time.time()),
              "data": {"object": {"id": "re_1", "object": "refund", "amount": 500, "currency": "chf",
                                  "payment_intent": "pi_9", "status": "failed", "metadata": {}}}}
    r_event = stripe_adapter.parse_webhook(*signed(refund, SECRET))
    assert r_event.refund is not None and r_event.refund.state is PaymentState.FAILED


@pytest.mark.parametrize("case", ["wrong_secret", "stale", "tampered", "no_header", "not_json", "other_type"])
def test_bad_webhooks_are_rejected(stripe_adapter: StripeAdapter, case: str) -> None:
    event = intent_event("pi_9", "succeeded", "inv_9:1")
    headers, body = signed(event, SECRET)
    if case == "wrong_secret":
        headers, body = signed(event, "whsec_someone_else")
    elif case == "stale":
        headers, body = signed(event, SECRET, at=int(time.time()) - 3600)
    elif case == "tampered":
        body = body.replace(b"4990", b"9990")
    elif case == "no_header":
        headers = {}
    elif case == "not_json":
        headers, body = signed(b"{not json", SECRET)
    elif case == "other_type":
        headers, body = signed({**event, "type": "customer.created",
                                "data": {"object": {"id": "cus_1", "object": "customer"}}}, SECRET)
    with pytest.raises(WebhookRejected):
        stripe_adapter.parse_webhook(headers, body)


# --- behind PaymentService, like the sandbox ------------------------------------------------


def test_collection_refund_and_webhook_through_the_service(sqlite_db: Database,
                                                          stripe_adapter: StripeAdapter) -> None:
    svc = PaymentService([stripe_adapter], SystemClock())
    customer = new_id("cus")
    with sqlite_db.session() as s:
        add_payment_method(s, customer, "card", "pm_card_visa", provider="stripe", service=svc)
        paid = collect_invoice(s, CollectableInvoice(new_id("inv"), customer, Decimal("20.00"), "CHF"), service=svc)
    assert paid.status == "paid"
    with sqlite_db.session() as s:
        payment = s.scalars(select(Payment).where(Payment.customer_id == customer)).one()
        refund = refund_payment(s, payment.id, Decimal("5.00"), service=svc)
        assert refund.status == "succeeded" and refund.provider_ref and refund.provider_ref.startswith("re_")

    declined = new_id("cus")
    with sqlite_db.session() as s:
        add_payment_method(s, declined, "card", "pm_card_chargeDeclinedInsufficientFunds", provider="stripe",
                           service=svc)
        failed = collect_invoice(s, CollectableInvoice(new_id("inv"), declined, Decimal("20.00"), "CHF"),
                                 service=svc)
    assert failed.status == "failed"
    notice = events(sqlite_db, "invoice.payment_failed", decline_code="insufficient_funds")
    assert notice and notice[-1]["retryable"] is True

    slow = new_id("cus")  # processing at Stripe; the webhook settles it, once
    with sqlite_db.session() as s:
        add_payment_method(s, slow, "card", "pm_card_processing", provider="stripe", service=svc)
        collect_invoice(s, CollectableInvoice(new_id("inv"), slow, Decimal("49.90"), "CHF"), service=svc)
        pending = s.scalars(select(Payment).where(Payment.customer_id == slow)).one()
        assert pending.status == "pending" and pending.provider_ref
    headers, body = signed(intent_event(pending.provider_ref, "succeeded", pending.idempotency_key, "evt_once"),
                           SECRET)
    with sqlite_db.session() as s:
        first = apply_webhook(s, "stripe", headers, body, service=svc)
    with sqlite_db.session() as s:
        second = apply_webhook(s, "stripe", headers, body, service=svc)
        assert s.get(Payment, pending.id).status == "succeeded"  # type: ignore[union-attr]
    assert (first.status, first.state, second.status) == ("applied", "succeeded", "duplicate")


def test_the_hosted_form_is_a_checkout_session_in_setup_mode_read_back_through_its_setup_intent(
        fake: tuple[FakeStripe, Server], stripe_adapter: StripeAdapter) -> None:
    import httpx

    state, server = fake
    back = "http://127.0.0.1:1/portal/tok/payment_method/return"
    started = stripe_adapter.start_setup("cus_ours", back)
    [sent] = state.posts("/v1/checkout/sessions")
    assert (sent.form["mode"], sent.form["payment_method_types[0]"], sent.form["client_reference_id"]) == (
        "setup", "card", "cus_ours")
    assert sent.form["customer"] in state.customers  # a Stripe customer, so the card can be charged off-session
    assert sent.form["success_url"] == back + "?setup_session={CHECKOUT_SESSION_ID}"
    assert started["url"].startswith(server.url)

    open_one = stripe_adapter.finish_setup(started["id"])
    assert (open_one.status, open_one.token, open_one.customer_id) == ("open", None, "cus_ours")
    answer = httpx.post(f"{started['url']}/complete", data={"card": "4242 4242 4242 4242"})
    assert answer.headers["location"] == f"{back}?setup_session={started['id']}"
    done = stripe_adapter.finish_setup(started["id"])
    pm = state.sessions[started["id"]]["setup_intent"]["payment_method"]
    assert (done.status, done.token, done.last4) == ("complete", f"{sent.form['customer']}:{pm}", "4242")
    assert stripe_adapter.charge(request(done.token or "")).state is PaymentState.SUCCEEDED
    with pytest.raises(ProviderRejected):
        stripe_adapter.finish_setup("cs_test_unknown")
