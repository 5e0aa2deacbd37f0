"""The adapter for the sandbox PSP: HTTP + JSON, mapped onto our payment states."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from engine.clock import Clock, SystemClock
from engine.money import quantum
from engine.payments.provider import (
    ChargeOutcome,
    ChargeRequest,
    HostedSetup,
    MethodCheck,
    PaymentState,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    RefundOutcome,
    RefundRequest,
    WebhookEvent,
    WebhookRejected,
    is_retryable,
)

# The sandbox's statuses -> ours. Anything else is pending: never count unknown as paid.
_PAYMENT_STATES: dict[str, PaymentState] = {
    "captured": PaymentState.SUCCEEDED,
    "partially_refunded": PaymentState.SUCCEEDED,
    "refunded": PaymentState.REFUNDED,
    "declined": PaymentState.FAILED,
    "canceled": PaymentState.FAILED,
    "authorized": PaymentState.PENDING,
    "processing": PaymentState.PENDING,
    "awaiting_transfer": PaymentState.PENDING,
}
_REFUND_STATES: dict[str, PaymentState] = {
    "succeeded": PaymentState.SUCCEEDED,
    "failed": PaymentState.FAILED,
    "pending": PaymentState.PENDING,
}
# ISO 8583-style response codes and wallet codes -> our decline codes.
_DECLINE_CODES: dict[str, str] = {
    "05": "generic_decline",
    "51": "insufficient_funds",
    "54": "expired_card",
    "14": "incorrect_number",
    "43": "stolen_card",
    "91": "try_again_later",
    "96": "processing_error",
    "PAYER_REJECTED": "payer_rejected",
}

SIGNATURE_HEADER = "sandbox-signature"


# Where the sandbox's payment request carries each method's stored token (a transfer has none).
_TOKEN_FIELDS = {"card": "number", "paypal": "email", "twint": "phone"}


def _fmt(amount: Decimal, currency: str) -> str:
    """The amount in the currency's minor unit. Exact already (collection refuses anything
    finer), so this only drops a database's extra scale ("70.00000000" -> "70.00")."""
    return str(amount.quantize(quantum(currency)))


def _map_payment(body: dict[str, Any]) -> ChargeOutcome:
    try:
        raw_status = str(body.get("status"))
        state = _PAYMENT_STATES.get(raw_status, PaymentState.PENDING)
        decline = None
        retryable = None
        if state is PaymentState.FAILED:
            raw_code = body.get("decline_code") or ""
            decline = _DECLINE_CODES.get(raw_code, "generic_decline")
            retryable = is_retryable(decline)
        captured = body.get("captured_at")
        return ChargeOutcome(
            state=state,
            provider_ref=str(body["id"]),
            amount=Decimal(str(body["amount"])),
            currency=str(body["currency"]),
            raw_status=raw_status,
            decline_code=decline,
            retryable=retryable,
            captured_at=datetime.fromisoformat(captured).astimezone(UTC) if captured else None,
            idempotency_key=body.get("idempotency_key"),
            refunded_amount=Decimal(str(body.get("amount_refunded") or "0")),
            instructions=body.get("next_action"),
        )
    except (KeyError, InvalidOperation, ValueError, TypeError) as exc:
        raise ProviderError(f"unusable payment object from the sandbox: {exc}") from exc


def _map_refund(body: dict[str, Any]) -> RefundOutcome:
    try:
        raw_status = str(body.get("status"))
        return RefundOutcome(
            state=_REFUND_STATES.get(raw_status, PaymentState.PENDING),
            provider_ref=str(body["id"]),
            payment_provider_ref=body.get("payment"),
            amount=Decimal(str(body["amount"])),
            currency=str(body["currency"]),
            raw_status=raw_status,
            idempotency_key=body.get("idempotency_key"),
        )
    except (KeyError, InvalidOperation, ValueError, TypeError) as exc:
        raise ProviderError(f"unusable refund object from the sandbox: {exc}") from exc


class SandboxAdapter:
    """Stateless: the HTTP client is a connection pool, nothing more."""

    name = "sandbox"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "sk_sandbox_test",
        webhook_secret: str = "whsec_sandbox",
        timeout: float = 10.0,
        webhook_tolerance_seconds: int = 300,
        clock: Clock | None = None,
        name: str = "sandbox",
    ) -> None:
        self.name = name
        self.webhook_secret = webhook_secret
        self.webhook_tolerance = webhook_tolerance_seconds
        # Webhook freshness is transport security: it is checked against the wall clock,
        # not the business (possibly test) clock.
        self.clock = clock or SystemClock()
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._client.close()

    # --- transport ------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"sandbox {method} {path}: timed out") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"sandbox {method} {path}: {exc}") from exc

    @staticmethod
    def _error(response: httpx.Response) -> ProviderError | ProviderRejected:
        if response.status_code >= 500 or response.status_code == 409:
            # 409: the same key is still being processed there; the outcome is unknown.
            return ProviderError(f"sandbox answered {response.status_code}: {response.text[:200]}")
        try:
            err = response.json().get("error", {})
        except ValueError:
            err = {}
        return ProviderRejected(str(err.get("code", response.status_code)), str(err.get("message", "")))

    # --- operations -----------------------------------------------------------------------
    def charge(self, request: ChargeRequest) -> ChargeOutcome:
        method: dict[str, Any] = {"type": request.method_type}
        token_field = _TOKEN_FIELDS.get(request.method_type)
        if token_field is not None:
            method[token_field] = request.token
        body = {
            "amount": _fmt(request.amount, request.currency),
            "currency": request.currency,
            "method": method,
            "capture": False,
            # The attempt's own key, so a settlement line finds its attempt even without the
            # provider's id; a transfer carries the invoice's structured reference instead.
            "reference": (request.payment_reference if request.method_type == "bank_transfer"
                          else None) or request.idempotency_key,
            "customer": request.customer_id,
            "description": request.description,
            "metadata": request.metadata,
        }
        r = self._request(
            "POST",
            "/v1/payments",
            content=json.dumps(body, sort_keys=True),
            headers={"Idempotency-Key": request.idempotency_key, "Content-Type": "application/json"},
        )
        if r.status_code not in (200, 201):
            raise self._error(r)
        payment = r.json()
        if payment.get("status") == "authorized":
            payment = self._capture(str(payment["id"]), request.idempotency_key)
        return _map_payment(payment)

    def _capture(self, provider_ref: str, key: str) -> dict[str, Any]:
        r = self._request(
            "POST", f"/v1/payments/{provider_ref}/capture", headers={"Idempotency-Key": f"{key}:capture"}
        )
        if r.status_code != 200:
            raise self._error(r)
        result: dict[str, Any] = r.json()
        return result

    def check_method(self, method_type: str, token: str | None) -> MethodCheck:
        body: dict[str, Any] = {"type": method_type}
        body[{"card": "number", "paypal": "email", "twint": "phone"}.get(method_type, "token")] = token
        r = self._request("POST", "/v1/payment_methods", content=json.dumps(body),
                          headers={"Content-Type": "application/json"})
        if r.status_code not in (200, 201):
            raise self._error(r)
        found = r.json()
        return MethodCheck(method_type, found.get("last4") or None, found.get("id"))

    # --- the hosted form for a new method (the customer page) ------------------------------
    def start_setup(self, customer_id: str, return_url: str) -> dict[str, str]:
        """Open a setup session: the customer's browser goes to its `url`, enters a card on
        the sandbox's own page (the engine never sees the form) and comes back to
        `return_url?setup_session=ID`."""
        response = self._request("POST", "/v1/setup_sessions", json={"customer": customer_id, "return_url": return_url})
        if response.status_code >= 300:
            raise self._error(response)
        body = response.json()
        return {"id": str(body["id"]), "url": str(body["url"])}

    def finish_setup(self, session_id: str) -> HostedSetup:
        response = self._request("GET", f"/v1/setup_sessions/{session_id}")
        if response.status_code >= 300:
            raise self._error(response)
        body = response.json()
        method = body.get("payment_method") or {}
        return HostedSetup(id=str(body["id"]), customer_id=str(body.get("customer") or ""),
                           status=str(body.get("status")), method_type=str(method.get("type") or "card"),
                           token=method.get("token"), last4=method.get("last4"))

    def refund(self, request: RefundRequest) -> RefundOutcome:
        body = {"payment": request.provider_ref, "amount": _fmt(request.amount, request.currency),
                "currency": request.currency}
        r = self._request(
            "POST",
            "/v1/refunds",
            content=json.dumps(body, sort_keys=True),
            headers={"Idempotency-Key": request.idempotency_key, "Content-Type": "application/json"},
        )
        if r.status_code not in (200, 201):
            raise self._error(r)
        return _map_refund(r.json())

    def lookup(self, idempotency_key: str) -> ChargeOutcome | None:
        r = self._request("GET", "/v1/payments", params={"idempotency_key": idempotency_key})
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise self._error(r)
        payment = r.json()
        if payment.get("status") == "authorized":
            # A crash between authorization and capture: finish what we started.
            payment = self._capture(str(payment["id"]), idempotency_key)
        return _map_payment(payment)

    def lookup_refund(self, idempotency_key: str) -> RefundOutcome | None:
        r = self._request("GET", "/v1/refunds", params={"idempotency_key": idempotency_key})
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise self._error(r)
        return _map_refund(r.json())

    # --- webhooks -------------------------------------------------------------------------
    def parse_webhook(self, headers: dict[str, str], body: bytes) -> WebhookEvent:
        self._verify(headers, body)
        try:
            event = json.loads(body)
            data = event["data"]
            event_id = str(event["id"])
            event_type = str(event["type"])
            created = datetime.fromtimestamp(int(event["created"]), UTC)
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"malformed webhook body: {exc}") from exc
        try:
            if data.get("object") == "refund":
                return WebhookEvent(event_id, event_type, created, refund=_map_refund(data))
            return WebhookEvent(event_id, event_type, created, payment=_map_payment(data))
        except ProviderError as exc:
            raise WebhookRejected(str(exc)) from exc

    def _verify(self, headers: dict[str, str], body: bytes) -> None:
        """The body is signed with our secret, at a time within the tolerance."""
        lowered = {k.lower(): v for k, v in headers.items()}
        header = lowered.get(SIGNATURE_HEADER)
        if not header:
            raise WebhookRejected("missing Sandbox-Signature header")
        parts: dict[str, list[str]] = {}
        for item in header.split(","):
            k, sep, v = item.strip().partition("=")
            if sep:
                parts.setdefault(k, []).append(v)
        try:
            ts = int(parts["t"][0])
        except (KeyError, ValueError):
            raise WebhookRejected("signature header has no valid timestamp") from None
        expected = hmac.new(
            self.webhook_secret.encode(), f"{ts}.".encode() + body, hashlib.sha256
        ).hexdigest()
        if not any(hmac.compare_digest(expected, sig) for sig in parts.get("v1", [])):
            raise WebhookRejected("bad signature")
        age = self.clock.now().timestamp() - ts
        if abs(age) > self.webhook_tolerance:
            raise WebhookRejected(
                f"timestamp is {int(age)} s from now (tolerance {self.webhook_tolerance} s): replayed or stale"
            )
