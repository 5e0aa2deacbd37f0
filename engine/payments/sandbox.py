"""A sandbox payment service provider that behaves like a real one, over HTTP.

Run it as its own process (`billing psp-sandbox`, see `run_sandbox`). It keeps its state in
memory: a restart of the sandbox forgets every payment (a restart of the *engine* is what the
crash-repair path is about, and the sandbox outlives it in the tests).

What it does, on purpose in its own vocabulary (statuses "captured", "declined",
ISO 8583-style decline codes "05", "51", "54") so the adapter's mapping is real work:

- POST /v1/payments: authorize (capture=false) or authorize and capture in one call.
  Methods: card (test numbers below), paypal (email), twint (phone), bank_transfer.
- POST /v1/payment_methods: check a method before it is stored (unknown card numbers: "14").
- POST /v1/payments/{id}/capture, POST /v1/refunds, GET /v1/payments/{id},
  GET /v1/payments?idempotency_key=K, GET /v1/refunds?idempotency_key=K.
- Idempotency-Key on every POST: the same key with the same body replays the first answer
  (header Idempotent-Replayed: true); with another body it is a 422; while the first request
  with that key is still running, a 409.
- Signed asynchronous webhooks (header Sandbox-Signature: t=UNIX,v1=HMAC-SHA256 of "t.body"),
  retried a few times until the receiver answers 2xx.
- GET /v1/settlements/{YYYY-MM-DD}: the daily settlement report, CSV, with fees and payout ids.
- Test controls under /v1/sandbox/: complete a bank transfer, list every payment, configure.
- A hosted form for a new card (the customer page's "update payment method"): POST
  /v1/setup_sessions {customer, return_url} -> {id, url}; the browser enters a test card at
  GET/POST /hosted/setup/{id} and is sent back to return_url?setup_session=ID; GET
  /v1/setup_sessions/{id} then holds {status: complete, payment_method: {type, token, last4}}
  (a sandbox token is the test card number, as everywhere in the sandbox).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import partial
from html import escape as html_escape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio.to_thread
import httpx
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from engine.clock import Clock, SystemClock
from engine.money import KNOWN_CURRENCIES, quantum
from engine.payments.statements import SETTLEMENT_COLUMNS
from engine.periods import iso_or_none

# Test card numbers. Anything else is declined as an incorrect number ("14").
CARD_SUCCESS = "4242424242424242"
CARD_GENERIC_DECLINE = "4000000000000002"
CARD_INSUFFICIENT_FUNDS = "4000000000009995"
CARD_EXPIRED = "4000000000000069"
CARD_SLOW = "4000000000000119"  # answers after `slow_seconds`, then succeeds
CARD_DUPLICATE_WEBHOOK = "4000000000000259"  # pending; outcome by a webhook delivered twice
CARD_ASYNC = "4000000000003220"  # pending (3-D Secure-like); outcome by one webhook

TEST_CARDS: dict[str, str] = {
    CARD_SUCCESS: "success",
    CARD_GENERIC_DECLINE: "generic decline (05, not retryable)",
    CARD_INSUFFICIENT_FUNDS: "insufficient funds (51, retryable)",
    CARD_EXPIRED: "expired card (54, not retryable)",
    CARD_SLOW: "slow answer, then success (client timeouts)",
    CARD_DUPLICATE_WEBHOOK: "pending, success delivered by a webhook sent twice",
    CARD_ASYNC: "pending, success delivered by one webhook",
}
_CARD_DECLINES = {CARD_GENERIC_DECLINE: "05", CARD_INSUFFICIENT_FUNDS: "51", CARD_EXPIRED: "54"}
_DECLINE_MESSAGES = {
    "05": "do not honour",
    "51": "insufficient funds",
    "54": "expired card",
    "14": "invalid card number",
    "PAYER_REJECTED": "the payer rejected the payment",
}

# Fee schedule: percent of the gross, rounded half-up to the minor unit, plus fixed minor units.
FEES: dict[str, tuple[Decimal, int]] = {
    "card": (Decimal("2.9"), 30),
    "paypal": (Decimal("3.49"), 49),
    "twint": (Decimal("1.3"), 0),
    "bank_transfer": (Decimal(0), 0),
}



def sandbox_fee(method_type: str, amount: Decimal, currency: str) -> Decimal:
    percent, fixed_minor = FEES.get(method_type, (Decimal(0), 0))
    q = quantum(currency)
    return (amount * percent / 100).quantize(q, rounding=ROUND_HALF_UP) + q * fixed_minor


def sign_payload(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass
class _Payment:
    id: str
    idempotency_key: str
    amount: Decimal
    currency: str
    method_type: str
    method_detail: str
    status: str
    reference: str | None
    customer: str | None
    created: datetime
    behaviour: str = "success"
    decline_code: str | None = None
    captured_at: datetime | None = None
    refunded: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)

    def public(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "payment",
            "idempotency_key": self.idempotency_key,
            "amount": str(self.amount),
            "currency": self.currency,
            "method": {"type": self.method_type, "detail": self.method_detail},
            "status": self.status,
            "reference": self.reference,
            "customer": self.customer,
            "created": self.created.isoformat(),
            "captured_at": iso_or_none(self.captured_at),
            "amount_refunded": str(self.refunded),
            "decline_code": self.decline_code,
            "decline_message": _DECLINE_MESSAGES.get(self.decline_code or ""),
        }
        if self.method_type == "bank_transfer":
            body["next_action"] = {
                "type": "bank_transfer_instructions",
                "iban": "CH9300762011623852957",
                "reference": self.reference,
            }
        return body


@dataclass
class _Refund:
    id: str
    idempotency_key: str
    payment_id: str
    amount: Decimal
    currency: str
    status: str
    created: datetime

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "refund",
            "idempotency_key": self.idempotency_key,
            "payment": self.payment_id,
            "amount": str(self.amount),
            "currency": self.currency,
            "status": self.status,
            "created": self.created.isoformat(),
        }


@dataclass
class SandboxState:
    clock: Clock
    api_key: str | None
    webhook_url: str | None
    webhook_secret: str
    slow_seconds: float
    async_delay: float
    lock: threading.RLock = field(default_factory=threading.RLock)
    payments: dict[str, _Payment] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)  # idempotency key -> payment id
    refunds: dict[str, _Refund] = field(default_factory=dict)
    refund_by_key: dict[str, str] = field(default_factory=dict)
    # (scope, key) -> (body hash, status code, response body)
    idempotency: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = field(
        default_factory=dict
    )
    in_flight: set[tuple[str, str]] = field(default_factory=set)
    webhook_log: list[dict[str, Any]] = field(default_factory=list)
    charge_requests: int = 0  # POSTs that created a payment (not replays)
    setups: dict[str, dict[str, Any]] = field(default_factory=dict)  # hosted-form sessions by id

    def now(self) -> datetime:
        return self.clock.now().astimezone(UTC)


def _err(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _amount(value: Any, currency: str) -> Decimal:
    if not isinstance(value, str):
        raise HTTPException(400, detail={"code": "invalid_amount", "message": "amount must be a decimal string"})
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise HTTPException(400, detail={"code": "invalid_amount", "message": f"{value!r}"}) from None
    if not amount.is_finite() or amount <= 0:
        raise HTTPException(400, detail={"code": "invalid_amount", "message": "amount must be positive"})
    if amount != amount.quantize(quantum(currency)):
        raise HTTPException(
            400,
            detail={"code": "invalid_amount", "message": f"{currency} has {quantum(currency)} as its smallest unit"},
        )
    return amount


def _check_auth(state: SandboxState, authorization: str | None) -> None:
    if state.api_key and authorization != f"Bearer {state.api_key}":
        raise HTTPException(401, detail={"code": "unauthorized", "message": "bad or missing API key"})



# --- webhooks -------------------------------------------------------------------------
def _send_webhook(state: SandboxState, event_type: str, data: dict[str, Any], times: int = 1, delay: float = 0) -> None:
    url = state.webhook_url
    if not url:
        return
    event = {
        "id": f"whevt_{secrets.token_hex(10)}",
        "type": event_type,
        "created": int(time.time()),
        "data": data,
    }

    def deliver() -> None:
        if delay:
            time.sleep(delay)
        for _copy in range(times):
            # The timestamp is re-signed per delivery, as real providers do.
            body = json.dumps(event).encode()
            for attempt in range(5):
                ts = int(time.time())
                headers = {
                    "Content-Type": "application/json",
                    "Sandbox-Signature": sign_payload(state.webhook_secret, ts, body),
                }
                status: int | str
                try:
                    r = httpx.post(url, content=body, headers=headers, timeout=10)
                    ok, status = r.status_code < 300, r.status_code
                except httpx.HTTPError as exc:
                    ok, status = False, type(exc).__name__
                with state.lock:
                    state.webhook_log.append(
                        {"event": event["id"], "type": event_type, "attempt": attempt, "ok": ok,
                         "status": status, "payment": data.get("id")}
                    )
                if ok:
                    break
                time.sleep(0.2 * (attempt + 1))

    threading.Thread(target=deliver, daemon=True, name="sandbox-webhook").start()

# --- idempotency ----------------------------------------------------------------------
def _idempotent(state: SandboxState, scope: str, key: str | None, body: bytes, run: Any) -> JSONResponse:
    if not key:
        return _err(400, "idempotency_key_required", "send an Idempotency-Key header")
    digest = hashlib.sha256(body).hexdigest()
    slot = (scope, key)
    with state.lock:
        stored = state.idempotency.get(slot)
        if stored is not None:
            if stored[0] != digest:
                return _err(
                    422,
                    "idempotency_conflict",
                    f"key {key!r} was used with a different request body",
                )
            return JSONResponse(stored[2], status_code=stored[1], headers={"Idempotent-Replayed": "true"})
        if slot in state.in_flight:
            return _err(409, "idempotency_key_in_use", "a request with this key is in progress")
        state.in_flight.add(slot)
    try:
        try:
            status, payload = run()
        except HTTPException as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
            status, payload = exc.status_code, {"error": detail}
        with state.lock:
            # Only answers about the request itself are stored: a 5xx may be retried.
            if status < 500:
                state.idempotency[slot] = (digest, status, payload)
        return JSONResponse(payload, status_code=status)
    finally:
        with state.lock:
            state.in_flight.discard(slot)

# --- payments -------------------------------------------------------------------------
def _capture(state: SandboxState, p: _Payment) -> None:
    p.status = "captured"
    p.captured_at = state.now()
    p.fee = sandbox_fee(p.method_type, p.amount, p.currency)

def _method_behaviour(state: SandboxState, mtype: Any, method: dict[str, Any]) -> tuple[str, str, str | None]:
    """(detail, behaviour, decline code) of a payment by this method: the test card numbers,
    PayPal addresses and TWINT numbers that decline, wait or answer asynchronously."""
    behaviour = _METHODS.get(str(mtype))  # str(): a JSON list or object is no method either
    if behaviour is None:
        raise HTTPException(400, detail={"code": "invalid_method", "message": f"unknown method {mtype!r}"})
    return behaviour(state, method)


def _card(state: SandboxState, method: dict[str, Any]) -> tuple[str, str, str | None]:
    number = str(method.get("number", "")).replace(" ", "")
    return f"card **** {number[-4:]}", *_card_behaviour(state, number)


def _paypal(_state: SandboxState, method: dict[str, Any]) -> tuple[str, str, str | None]:
    email = str(method.get("email", ""))
    return f"paypal {email}", "async_decline" if email.startswith("decline") else "async", None


def _twint(_state: SandboxState, method: dict[str, Any]) -> tuple[str, str, str | None]:
    phone = str(method.get("phone", ""))
    return f"twint {phone[-4:]}", "async_decline" if phone.endswith("9999") else "async", None


def _bank_transfer(_state: SandboxState, _method: dict[str, Any]) -> tuple[str, str, str | None]:
    return "bank transfer", "transfer", None


# Each method the sandbox takes: what it shows of the method, and how its payments behave.
_METHODS: dict[str, Callable[[SandboxState, dict[str, Any]], tuple[str, str, str | None]]] = {
    "card": _card, "paypal": _paypal, "twint": _twint, "bank_transfer": _bank_transfer,
}


_CARD_BEHAVIOURS = {CARD_SUCCESS: "success", CARD_DUPLICATE_WEBHOOK: "async_duplicate", CARD_ASYNC: "async"}


def _card_behaviour(state: SandboxState, number: str) -> tuple[str, str | None]:
    if number in _CARD_DECLINES:
        return "success", _CARD_DECLINES[number]
    if number == CARD_SLOW:
        time.sleep(state.slow_seconds)
        return "success", None
    if number in _CARD_BEHAVIOURS:
        return _CARD_BEHAVIOURS[number], None
    return "success", "14"


def _first_outcome(state: SandboxState, p: _Payment, decline: str | None,
                   auto_capture: bool) -> tuple[str, int, float] | None:
    """Set what a new payment became (declined, awaiting a transfer, processing, captured or
    authorized); the webhook to send of it (`async`: one scheduled), if any."""
    if decline:
        p.status, p.decline_code = "declined", decline
        return ("payment.declined", 1, 0)
    if p.behaviour == "transfer":
        p.status = "awaiting_transfer"
        return None
    if p.behaviour.startswith("async"):
        p.status = "processing"
        return ("async", 2 if p.behaviour == "async_duplicate" else 1, state.async_delay)
    if auto_capture:
        _capture(state, p)
        return ("payment.captured", 1, 0)
    return None


def _create_payment(state: SandboxState, key: str, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    currency = req.get("currency")
    if currency not in KNOWN_CURRENCIES:
        raise HTTPException(400, detail={"code": "invalid_currency", "message": f"{currency!r}"})
    amount = _amount(req.get("amount"), currency)
    method = req.get("method") or {}
    mtype = method.get("type")
    auto_capture = req.get("capture", True) is not False
    detail, behaviour, decline = _method_behaviour(state, mtype, method)
    now = state.now()
    p = _Payment(
        id=f"sbp_{secrets.token_hex(8)}",
        idempotency_key=key,
        amount=amount,
        currency=currency,
        method_type=str(mtype),  # one of the four _method_behaviour accepts
        method_detail=detail,
        status="authorized",
        reference=req.get("reference"),
        customer=req.get("customer"),
        created=now,
        behaviour=behaviour,
    )
    webhook = _first_outcome(state, p, decline, auto_capture)
    with state.lock:
        state.payments[p.id] = p
        state.by_key[key] = p.id
        state.charge_requests += 1
    if webhook and webhook[0] == "async":
        _schedule_async_outcome(state, p, webhook[1], webhook[2])
    elif webhook:
        _send_webhook(state, webhook[0], p.public(), times=webhook[1])
    return 201, p.public()

def _schedule_async_outcome(state: SandboxState, p: _Payment, times: int, delay: float) -> None:
    def settle() -> None:
        time.sleep(delay)
        with state.lock:
            if p.behaviour == "async_decline":
                p.status, p.decline_code = "declined", "PAYER_REJECTED"
                kind = "payment.declined"
            else:
                _capture(state, p)
                kind = "payment.captured"
            data = p.public()
        _send_webhook(state, kind, data, times=times)

    threading.Thread(target=settle, daemon=True, name="sandbox-async").start()



# --- refunds --------------------------------------------------------------------------
def _create_refund(state: SandboxState, key: str, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    with state.lock:
        p = state.payments.get(str(req.get("payment")))
        if p is None:
            raise HTTPException(404, detail={"code": "not_found", "message": "no such payment"})
        if p.status not in ("captured", "partially_refunded"):
            raise HTTPException(400, detail={"code": "not_refundable", "message": f"payment is {p.status}"})
        amount = _amount(req.get("amount", str(p.amount - p.refunded)), p.currency)
        if req.get("currency", p.currency) != p.currency:
            raise HTTPException(400, detail={"code": "currency_mismatch", "message": p.currency})
        if amount > p.amount - p.refunded:
            raise HTTPException(
                400,
                detail={
                    "code": "amount_exceeds_refundable",
                    "message": f"at most {p.amount - p.refunded} {p.currency} can be refunded",
                },
            )
        p.refunded += amount
        p.status = "refunded" if p.refunded == p.amount else "partially_refunded"
        r = _Refund(
            id=f"sbr_{secrets.token_hex(8)}",
            idempotency_key=key,
            payment_id=p.id,
            amount=amount,
            currency=p.currency,
            status="succeeded",
            created=state.now(),
        )
        state.refunds[r.id] = r
        state.refund_by_key[key] = r.id
    _send_webhook(state, "refund.succeeded", r.public())
    return 201, r.public()



def _setup_form(setup: dict[str, Any], error: str = "", status: int = 200) -> HTMLResponse:
    message = f'<p role="alert" style="color:#b00">{html_escape(error)}</p>' if error else ""
    cards = "".join(f"<li><code>{n}</code>: {html_escape(what)}</li>" for n, what in TEST_CARDS.items())
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sandbox: add a card</title>"
        "<meta name='referrer' content='no-referrer'></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:30rem;margin:2rem auto'>"
        "<h1>Add a card</h1><p>Sandbox payment provider: no real card is charged.</p>"
        f"{message}<form method='post'>"
        "<label>Card number <input name='number' autocomplete='cc-number' inputmode='numeric' required></label><br><br>"
        "<label>Expiry <input name='expiry' placeholder='MM/YY' value='12/34'></label> "
        "<label>CVC <input name='cvc' value='123' size='4'></label><br><br>"
        "<button type='submit'>Save card</button></form>"
        f"<details><summary>Test cards</summary><ul>{cards}</ul></details></body></html>"
    )
    back = urlsplit(str(setup["return_url"]))
    return HTMLResponse(page, status_code=status, headers={
        # The form posts here and is redirected back to the merchant: both may be its target.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   f"form-action 'self' {back.scheme}://{back.netloc}; frame-ancestors 'none'",
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def create_sandbox_app(
    *,
    api_key: str | None = "sk_sandbox_test",
    webhook_url: str | None = None,
    webhook_secret: str = "whsec_sandbox",
    slow_seconds: float = 3.0,
    async_delay: float = 0.2,
    clock: Clock | None = None,
) -> FastAPI:
    """The sandbox PSP as an ASGI app. `webhook_url` receives the signed events; it can be
    changed at run time with POST /v1/sandbox/config."""
    state = SandboxState(
        clock=clock or SystemClock(),
        api_key=api_key,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        slow_seconds=slow_seconds,
        async_delay=async_delay,
    )
    app = FastAPI(title="billing-engine PSP sandbox")
    app.state.sandbox = state

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else {"code": "error", "message": str(exc.detail)}
        return JSONResponse({"error": detail}, status_code=exc.status_code)

    # The routes below call the helpers (module functions over `state`) by these names.
    check_auth = partial(_check_auth, state)
    send_webhook = partial(_send_webhook, state)
    idempotent = partial(_idempotent, state)
    capture = partial(_capture, state)
    create_payment = partial(_create_payment, state)
    create_refund = partial(_create_refund, state)
    setup_form = _setup_form

    @app.post("/v1/payments")
    async def post_payment(
        request: Request,
        authorization: str | None = Header(default=None),
        idempotency_key: str | None = Header(default=None),
    ) -> JSONResponse:
        check_auth(authorization)
        raw = await request.body()
        try:
            req = json.loads(raw)
        except ValueError:
            return _err(400, "invalid_json", "the body is not JSON")
        return await anyio.to_thread.run_sync(
            lambda: idempotent("payments", idempotency_key, raw, lambda: create_payment(str(idempotency_key), req))
        )

    @app.post("/v1/payments/{payment_id}/capture")
    def post_capture(
        payment_id: str,
        authorization: str | None = Header(default=None),
        idempotency_key: str | None = Header(default=None),
    ) -> JSONResponse:
        check_auth(authorization)

        def run() -> tuple[int, dict[str, Any]]:
            with state.lock:
                p = state.payments.get(payment_id)
                if p is None:
                    return 404, {"error": {"code": "not_found", "message": payment_id}}
                if p.status == "authorized":
                    capture(p)
                    send_webhook("payment.captured", p.public())
                elif p.status != "captured":
                    return 400, {"error": {"code": "not_capturable", "message": f"status {p.status}"}}
                return 200, p.public()

        return idempotent("capture", idempotency_key, payment_id.encode(), run)

    @app.post("/v1/payment_methods")
    async def post_payment_method(request: Request, authorization: str | None = Header(default=None)) -> JSONResponse:
        """Check a method before it is stored (like a PSP's tokenization): a card number the
        sandbox does not know is refused here with "14", not only at the first charge."""
        check_auth(authorization)
        try:
            req = json.loads(await request.body() or b"{}")
        except ValueError:
            return _err(400, "invalid_json", "the body is not JSON")
        mtype = req.get("type")
        if mtype == "card":
            number = str(req.get("number", "")).replace(" ", "")
            if number not in TEST_CARDS:
                return _err(402, "14", _DECLINE_MESSAGES["14"])
            detail = number[-4:]
        elif mtype in ("paypal", "twint", "bank_transfer"):
            detail = str(req.get("email") or req.get("phone") or "")[-4:]
        else:
            return _err(400, "invalid_method", f"unknown method {mtype!r}")
        return JSONResponse({"id": f"sbpm_{secrets.token_hex(8)}", "object": "payment_method",
                             "type": mtype, "last4": detail}, status_code=201)

    @app.get("/v1/payments/{payment_id}")
    def get_payment(payment_id: str, authorization: str | None = Header(default=None)) -> JSONResponse:
        check_auth(authorization)
        with state.lock:
            p = state.payments.get(payment_id)
            if p is None:
                return _err(404, "not_found", payment_id)
            return JSONResponse(p.public())

    @app.get("/v1/payments")
    def find_payment(idempotency_key: str, authorization: str | None = Header(default=None)) -> JSONResponse:
        check_auth(authorization)
        with state.lock:
            pid = state.by_key.get(idempotency_key)
            if pid is None:
                if ("payments", idempotency_key) in state.in_flight:
                    return _err(409, "idempotency_key_in_use", "the request is still in progress")
                return _err(404, "not_found", idempotency_key)
            return JSONResponse(state.payments[pid].public())

    @app.post("/v1/refunds")
    async def post_refund(
        request: Request,
        authorization: str | None = Header(default=None),
        idempotency_key: str | None = Header(default=None),
    ) -> JSONResponse:
        check_auth(authorization)
        raw = await request.body()
        try:
            req = json.loads(raw)
        except ValueError:
            return _err(400, "invalid_json", "the body is not JSON")
        return idempotent("refunds", idempotency_key, raw, lambda: create_refund(str(idempotency_key), req))

    @app.get("/v1/refunds")
    def find_refund(idempotency_key: str, authorization: str | None = Header(default=None)) -> JSONResponse:
        check_auth(authorization)
        with state.lock:
            rid = state.refund_by_key.get(idempotency_key)
            if rid is None:
                return _err(404, "not_found", idempotency_key)
            return JSONResponse(state.refunds[rid].public())

    # --- the hosted form for a new payment method -------------------------------------------
    # Like a provider's hosted page (Stripe Checkout in setup mode): the engine opens a
    # session server to server, the customer's browser enters the card here, on the sandbox's
    # own page, and is sent back to the engine, which reads the result server to server.
    @app.post("/v1/setup_sessions")
    async def post_setup_session(request: Request, authorization: str | None = Header(default=None)) -> JSONResponse:
        check_auth(authorization)
        try:
            req = json.loads(await request.body() or b"{}")
        except ValueError:
            return _err(400, "invalid_json", "the body is not JSON")
        customer, back = req.get("customer"), req.get("return_url")
        if not isinstance(customer, str) or not customer:
            return _err(400, "invalid_customer", "customer is required")
        if not isinstance(back, str) or not back.startswith(("https://", "http://")) or len(back) > 2000:
            return _err(400, "invalid_return_url", "return_url must be an http(s) URL")
        session_id = f"seti_{secrets.token_hex(12)}"
        setup = {"id": session_id, "object": "setup_session", "customer": customer, "return_url": back,
                 "status": "open", "payment_method": None,
                 "url": str(request.base_url).rstrip("/") + f"/hosted/setup/{session_id}"}
        with state.lock:
            state.setups[session_id] = setup
        return JSONResponse(setup, status_code=201)

    @app.get("/v1/setup_sessions/{session_id}")
    def get_setup_session(session_id: str, authorization: str | None = Header(default=None)) -> JSONResponse:
        check_auth(authorization)
        with state.lock:
            setup = state.setups.get(session_id)
            if setup is None:
                return _err(404, "not_found", session_id)
            return JSONResponse(dict(setup))

    @app.get("/hosted/setup/{session_id}", response_class=HTMLResponse)
    def hosted_setup(session_id: str) -> HTMLResponse:
        with state.lock:
            setup = state.setups.get(session_id)
        if setup is None or setup["status"] != "open":
            return HTMLResponse("<h1>This session is over</h1>", status_code=404)
        return setup_form(setup)

    @app.post("/hosted/setup/{session_id}", response_class=HTMLResponse)
    async def hosted_setup_submit(session_id: str, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
        number = (form.get("number") or [""])[0].replace(" ", "")
        with state.lock:
            setup = state.setups.get(session_id)
            if setup is None or setup["status"] != "open":
                return HTMLResponse("<h1>This session is over</h1>", status_code=404)
            if number not in TEST_CARDS:
                return setup_form(setup, f"{_DECLINE_MESSAGES['14']}: use one of the test cards", 402)
            setup["status"] = "complete"
            setup["payment_method"] = {"type": "card", "token": number, "last4": number[-4:]}
            back = str(setup["return_url"])
        separator = "&" if "?" in back else "?"
        return RedirectResponse(f"{back}{separator}{urlencode({'setup_session': session_id})}", status_code=303)

    # --- settlement -----------------------------------------------------------------------
    @app.get("/v1/settlements/{day}")
    def settlement(day: str, authorization: str | None = Header(default=None)) -> PlainTextResponse:
        check_auth(authorization)
        try:
            when = date.fromisoformat(day)
        except ValueError:
            raise HTTPException(400, detail={"code": "invalid_date", "message": day}) from None
        return PlainTextResponse(settlement_csv(state, when), media_type="text/csv")

    # --- test controls --------------------------------------------------------------------
    @app.post("/v1/sandbox/payments/{payment_id}/complete")
    def complete_transfer(payment_id: str, authorization: str | None = Header(default=None)) -> JSONResponse:
        check_auth(authorization)
        with state.lock:
            p = state.payments.get(payment_id)
            if p is None or p.status != "awaiting_transfer":
                return _err(400, "not_awaiting_transfer", payment_id)
            capture(p)
            data = p.public()
        send_webhook("payment.captured", data)
        return JSONResponse(data)

    @app.get("/v1/sandbox/payments")
    def list_payments(authorization: str | None = Header(default=None)) -> JSONResponse:
        check_auth(authorization)
        with state.lock:
            return JSONResponse(
                {
                    "payments": [p.public() for p in state.payments.values()],
                    "refunds": [r.public() for r in state.refunds.values()],
                    "charge_requests": state.charge_requests,
                    "webhooks": list(state.webhook_log),
                }
            )

    @app.post("/v1/sandbox/config")
    async def configure(request: Request, authorization: str | None = Header(default=None)) -> JSONResponse:
        check_auth(authorization)
        req = await request.json()
        with state.lock:
            if "webhook_url" in req:
                state.webhook_url = req["webhook_url"]
            if "slow_seconds" in req:
                state.slow_seconds = float(req["slow_seconds"])
        return JSONResponse({"webhook_url": state.webhook_url, "slow_seconds": state.slow_seconds})

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def settlement_csv(state: SandboxState, day: date) -> str:
    """Captured payments and refunds of `day` (UTC), one payout per currency."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SETTLEMENT_COLUMNS)
    with state.lock:
        rows: list[list[str]] = []
        for p in state.payments.values():
            if p.captured_at is not None and p.captured_at.date() == day:
                net = p.amount - p.fee
                rows.append(
                    [day.isoformat(), f"po_{day:%Y%m%d}_{p.currency}", "charge", p.id, p.reference or "",
                     p.currency, str(p.amount), str(p.fee), str(net), p.captured_at.isoformat()]
                )
        for r in state.refunds.values():
            if r.created.date() == day and r.status == "succeeded":
                rows.append(
                    [day.isoformat(), f"po_{day:%Y%m%d}_{r.currency}", "refund", r.id,
                     state.payments[r.payment_id].reference or "", r.currency, str(-r.amount),
                     str(Decimal(0).quantize(quantum(r.currency))), str(-r.amount), r.created.isoformat()]
                )
    rows.sort(key=lambda row: row[9])
    writer.writerows(rows)
    return out.getvalue()


def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 8090,
    *,
    api_key: str | None = "sk_sandbox_test",
    webhook_url: str | None = None,
    webhook_secret: str = "whsec_sandbox",
    slow_seconds: float = 3.0,
    log_level: str = "info",
    clock: Clock | None = None,
) -> None:
    """Serve the sandbox until interrupted (`billing psp-sandbox`)."""
    import uvicorn

    app = create_sandbox_app(
        api_key=api_key,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        slow_seconds=slow_seconds,
        clock=clock,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
