"""The adapter's mapping, the sandbox's own idempotency, references and money checks."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx
import pytest

from engine.payments import (
    CollectableInvoice,
    PaymentError,
    PaymentState,
    WebhookRejected,
    creditor_reference,
    invoice_reference,
    is_valid_creditor_reference,
)
from engine.payments.sandbox import CARD_SUCCESS, sandbox_fee, sign_payload
from engine.payments.sandbox_adapter import SandboxAdapter, _map_payment
from engine.payments.service import check_amount
from tests.payments.conftest import API_KEY, SECRET, Server, new_id


def payment_body(status: str, **extra: object) -> dict[str, object]:
    return {"id": "sbp_1", "amount": "10.00", "currency": "CHF", "status": status, **extra}


@pytest.mark.parametrize(("status", "state"), [
    ("captured", PaymentState.SUCCEEDED),
    ("declined", PaymentState.FAILED),
    ("refunded", PaymentState.REFUNDED),
    ("authorized", PaymentState.PENDING),
    ("processing", PaymentState.PENDING),
    ("on_hold_for_review", PaymentState.PENDING),  # unknown: pending, never success
    ("", PaymentState.PENDING),
])
def test_status_mapping_unknown_is_pending(status: str, state: PaymentState) -> None:
    assert _map_payment(payment_body(status)).state is state


@pytest.mark.parametrize(("raw", "code", "retryable"), [
    ("05", "generic_decline", False), ("51", "insufficient_funds", True), ("54", "expired_card", False),
    ("ZZ", "generic_decline", False),
])
def test_decline_codes_say_whether_to_retry(raw: str, code: str, retryable: bool) -> None:
    out = _map_payment(payment_body("declined", decline_code=raw))
    assert (out.decline_code, out.retryable) == (code, retryable)


def test_sandbox_idempotency_replays_and_conflicts(sandbox: Server) -> None:
    key = new_id("idem")
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key}
    body = json.dumps({"amount": "10.00", "currency": "CHF", "method": {"type": "card", "number": CARD_SUCCESS}})
    first = httpx.post(f"{sandbox.url}/v1/payments", content=body, headers=headers)
    replay = httpx.post(f"{sandbox.url}/v1/payments", content=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    other = body.replace("10.00", "11.00")
    conflict = httpx.post(f"{sandbox.url}/v1/payments", content=other, headers=headers)
    assert conflict.status_code == 422 and conflict.json()["error"]["code"] == "idempotency_conflict"
    no_key = httpx.post(f"{sandbox.url}/v1/payments", content=body,
                        headers={"Authorization": f"Bearer {API_KEY}"})
    assert no_key.status_code == 400
    unauthorized = httpx.post(f"{sandbox.url}/v1/payments", content=body, headers={"Idempotency-Key": key})
    assert unauthorized.status_code == 401


def test_webhook_verification(sandbox: Server) -> None:
    adapter = SandboxAdapter(sandbox.url, api_key=API_KEY, webhook_secret=SECRET)
    data = payment_body("captured", object="payment")
    body = json.dumps({"id": "whevt_1", "type": "payment.captured", "created": int(time.time()), "data": data}).encode()
    now = int(time.time())
    event = adapter.parse_webhook({"Sandbox-Signature": sign_payload(SECRET, now, body)}, body)
    assert event.payment is not None and event.payment.state is PaymentState.SUCCEEDED
    with pytest.raises(WebhookRejected, match="bad signature"):
        adapter.parse_webhook({"Sandbox-Signature": sign_payload(SECRET, now, body + b" ")}, body)
    with pytest.raises(WebhookRejected, match="replayed or stale"):
        adapter.parse_webhook({"Sandbox-Signature": sign_payload(SECRET, now - 301, body)}, body)
    with pytest.raises(WebhookRejected, match="missing"):
        adapter.parse_webhook({}, body)
    adapter.close()


def test_creditor_references() -> None:
    assert creditor_reference("539007547034") == "RF18539007547034"  # the ISO 11649 example
    assert is_valid_creditor_reference("RF18 5390 0754 7034")
    assert not is_valid_creditor_reference("RF19 5390 0754 7034")
    assert is_valid_creditor_reference(invoice_reference("inv_2026_000042"))
    long_ref = invoice_reference("invoice-" + "x" * 60)
    assert is_valid_creditor_reference(long_ref) and len(long_ref) <= 25


def test_money_is_decimal_and_exact() -> None:
    with pytest.raises(PaymentError, match="never float"):
        check_amount(10.0, "CHF")  # type: ignore[arg-type]
    with pytest.raises(PaymentError, match="more decimals"):
        check_amount(Decimal("10.001"), "CHF")
    with pytest.raises(PaymentError, match="more decimals"):
        check_amount(Decimal("100.5"), "JPY")
    assert check_amount(Decimal("1.234"), "KWD") == Decimal("1.234")
    # Fees round half-up to the minor unit: 2.9 % of 10.00 = 0.29, + 0.30.
    assert sandbox_fee("card", Decimal("10.00"), "CHF") == Decimal("0.59")
    assert sandbox_fee("card", Decimal("1000"), "JPY") == Decimal("59")
    assert CollectableInvoice("i", "c", Decimal("1.00"), "CHF").attempt == 1
