"""A local server that answers like Stripe's API (v1, form-encoded requests, JSON answers,
the `{"error": {...}}` envelope, idempotent POSTs), written by us from Stripe's public API
reference for the calls the adapter makes. It records every request, so tests can check
what the official SDK really sent. It is not Stripe: what Stripe itself does differently is
not tested by it.

Test payment methods (named after Stripe's test PaymentMethods where one exists):
pm_card_visa succeeds; pm_card_chargeDeclinedInsufficientFunds, ..ExpiredCard, ..Declined
(generic), pm_card_authenticationRequired decline with a 402 card_error; pm_card_processing
stays processing; pm_card_newStatus answers a status Stripe may add one day; pm_slow answers
after SLOW_SECONDS; pm_server_error answers 500.

The hosted form: customers, Checkout Sessions in setup mode (each with its SetupIntent), and
the page a browser fills in at the session's `url` (`/checkout/{id}`: a card number, then back
to the success URL with the session id).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

SLOW_SECONDS = 1.5

DECLINES = {
    "pm_card_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds"),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card"),
    "pm_card_chargeDeclined": ("card_declined", "generic_decline"),
    "pm_card_authenticationRequired": ("authentication_required", "authentication_required"),
}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    query: dict[str, str]


@dataclass
class FakeStripe:
    requests: list[Recorded] = field(default_factory=list)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotent: dict[str, tuple[bytes, int, dict[str, Any]]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    def posts(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]


def _error(status: int, type_: str, message: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": type_, "message": message, **extra}}


def create_fake_stripe(state: FakeStripe) -> FastAPI:
    app = FastAPI()

    async def record(request: Request) -> tuple[bytes, dict[str, str]]:
        body = await request.body()
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        state.requests.append(Recorded(request.method, request.url.path, dict(request.headers), form,
                                       dict(request.query_params)))
        return body, form

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization", "").startswith("Bearer sk_test_")

    async def idempotent(request: Request, body: bytes, run: Any) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        if key and key in state.idempotent:
            first_body, status, answer = state.idempotent[key]
            if first_body != body:
                status, answer = _error(400, "idempotency_error",
                                        "Keys for idempotent requests can only be used with the same "
                                        "parameters they were first used with.")
                return JSONResponse(answer, status_code=status)
            return JSONResponse(answer, status_code=status, headers={"Idempotent-Replayed": "true"})
        status, answer = await run()
        if key and status < 500:
            state.idempotent[key] = (body, status, answer)
        return JSONResponse(answer, status_code=status)

    @app.post("/v1/payment_intents")
    async def create_intent(request: Request) -> JSONResponse:
        body, form = await record(request)
        if not authorized(request):
            return JSONResponse(_error(401, "invalid_request_error", "Invalid API Key provided")[1], 401)

        async def run() -> tuple[int, dict[str, Any]]:
            method = form.get("payment_method", "")
            if method == "pm_server_error":
                return _error(500, "api_error", "An unknown error occurred")
            if method == "pm_slow":
                await asyncio.sleep(SLOW_SECONDS)
            intent: dict[str, Any] = {
                "id": f"pi_{secrets.token_hex(8)}", "object": "payment_intent",
                "amount": int(form["amount"]), "currency": form["currency"], "status": "succeeded",
                "created": int(time.time()), "customer": form.get("customer"),
                "latest_charge": f"ch_{secrets.token_hex(8)}", "last_payment_error": None,
                "metadata": {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")},
            }
            state.intents[intent["id"]] = intent
            if method in DECLINES:
                code, decline = DECLINES[method]
                err = {"type": "card_error", "code": code, "decline_code": decline,
                       "message": "Your card was declined.", "payment_method": {"id": method}}
                intent.update(status="requires_payment_method", latest_charge=None, last_payment_error=err)
                return _error(402, "card_error", "Your card was declined.", code=code, decline_code=decline,
                              payment_intent=intent)
            if method == "pm_card_processing":
                intent["status"] = "processing"
            elif method == "pm_card_newStatus":
                intent["status"] = "requires_quantum_review"
            return 200, intent

        return await idempotent(request, body, run)

    @app.get("/v1/payment_intents/search")
    async def search_intents(request: Request) -> JSONResponse:
        await record(request)
        match = re.fullmatch(r"metadata\['idempotency_key'\]:'((?:[^'\\]|\\.)*)'", request.query_params["query"])
        if match is None:
            return JSONResponse(_error(400, "invalid_request_error", "bad query")[1], 400)
        key = re.sub(r"\\(.)", r"\1", match.group(1))
        expand = any(k.startswith("expand") and v == "data.latest_charge"
                     for k, v in request.query_params.multi_items())
        data = []
        for intent in state.intents.values():
            if intent["metadata"].get("idempotency_key") != key:
                continue
            if expand and isinstance(intent["latest_charge"], str):
                refunded = sum(r["amount"] for r in state.refunds.values() if r["payment_intent"] == intent["id"])
                intent = {**intent, "latest_charge": {"id": intent["latest_charge"], "object": "charge",
                                                      "amount_refunded": refunded,
                                                      "refunded": refunded >= intent["amount"]}}
            data.append(intent)
        return JSONResponse({"object": "search_result", "url": "/v1/payment_intents/search",
                             "has_more": False, "data": data[:1]})

    @app.post("/v1/refunds")
    async def create_refund(request: Request) -> JSONResponse:
        body, form = await record(request)

        async def run() -> tuple[int, dict[str, Any]]:
            intent = state.intents.get(form.get("payment_intent", ""))
            if intent is None:
                return _error(404, "invalid_request_error", "No such payment_intent", code="resource_missing")
            amount = int(form.get("amount", intent["amount"]))
            refunded = sum(r["amount"] for r in state.refunds.values() if r["payment_intent"] == intent["id"])
            if amount > intent["amount"] - refunded:
                return _error(400, "invalid_request_error", "Refund amount is greater than unrefunded amount",
                              code="amount_too_large")
            refund = {"id": f"re_{secrets.token_hex(8)}", "object": "refund", "amount": amount,
                      "currency": intent["currency"], "payment_intent": intent["id"], "status": "succeeded",
                      "created": int(time.time()),
                      "metadata": {k[len("metadata["):-1]: v for k, v in form.items()
                                   if k.startswith("metadata[")}}
            state.refunds[refund["id"]] = refund
            return 200, refund

        return await idempotent(request, body, run)

    @app.get("/v1/refunds")
    async def list_refunds(request: Request) -> JSONResponse:
        await record(request)
        limit = int(request.query_params.get("limit", 10))
        data = list(state.refunds.values())[::-1][:limit]  # newest first
        return JSONResponse({"object": "list", "url": "/v1/refunds", "has_more": False, "data": data})

    _hosted_form(app, state, record)
    return app


def _metadata(form: dict[str, str], prefix: str = "metadata") -> dict[str, str]:
    return {k[len(prefix) + 1:-1]: v for k, v in form.items() if k.startswith(f"{prefix}[")}


def _hosted_form(app: FastAPI, state: FakeStripe, record: Any) -> None:
    @app.post("/v1/customers")
    async def create_customer(request: Request) -> JSONResponse:
        _, form = await record(request)
        customer = {"id": f"cus_{secrets.token_hex(7)}", "object": "customer", "metadata": _metadata(form)}
        state.customers[customer["id"]] = customer
        return JSONResponse(customer)

    @app.post("/v1/checkout/sessions")
    async def create_session(request: Request) -> JSONResponse:
        _, form = await record(request)
        if form.get("mode") != "setup" or form.get("customer") not in state.customers:
            return JSONResponse(_error(400, "invalid_request_error", "setup mode for a known customer only")[1], 400)
        sid = f"cs_test_{secrets.token_hex(8)}"
        intent = {"id": f"seti_{secrets.token_hex(8)}", "object": "setup_intent", "status": "requires_payment_method",
                  "customer": form["customer"], "payment_method": None,
                  "metadata": _metadata(form, "setup_intent_data[metadata]")}
        session = {"id": sid, "object": "checkout.session", "mode": "setup", "status": "open",
                   "customer": form["customer"], "client_reference_id": form.get("client_reference_id"),
                   "metadata": _metadata(form), "success_url": form["success_url"], "cancel_url": form["cancel_url"],
                   "setup_intent": intent, "url": f"{request.base_url}checkout/{sid}"}
        state.sessions[sid] = session
        return JSONResponse({**session, "setup_intent": intent["id"]})

    @app.get("/v1/checkout/sessions/{sid}")
    async def get_session(sid: str, request: Request) -> JSONResponse:
        await record(request)
        session = state.sessions.get(sid)
        if session is None:
            return JSONResponse(_error(404, "invalid_request_error", f"No such checkout.session: '{sid}'",
                                       code="resource_missing")[1], 404)
        expand = [v for k, v in request.query_params.multi_items() if k.startswith("expand")]
        intent = dict(session["setup_intent"])
        if "setup_intent.payment_method" in expand and intent["payment_method"]:
            intent["payment_method"] = state.methods[intent["payment_method"]]
        return JSONResponse({**session, "setup_intent": intent if expand else intent["id"]})

    @app.get("/v1/payment_methods/{pm}")
    async def get_method(pm: str, request: Request) -> JSONResponse:
        await record(request)
        if pm not in state.methods:
            return JSONResponse(_error(404, "invalid_request_error", f"No such PaymentMethod: '{pm}'",
                                       code="resource_missing")[1], 404)
        return JSONResponse(state.methods[pm])

    @app.get("/checkout/{sid}")
    async def page(sid: str) -> HTMLResponse:
        return HTMLResponse(f"""<!doctype html><title>Stripe Checkout (fake)</title>
<form method="post" action="/checkout/{sid}/complete"><label>Card number <input name="card"></label>
<button>Save card</button></form>""")

    @app.post("/checkout/{sid}/complete")
    async def complete(sid: str, request: Request) -> RedirectResponse:
        form = dict(parse_qsl((await request.body()).decode()))
        session = state.sessions[sid]
        card = form.get("card", "").replace(" ", "")
        pm = {"id": f"pm_{secrets.token_hex(8)}", "object": "payment_method", "type": "card",
              "customer": session["customer"], "card": {"brand": "visa", "last4": card[-4:]}}
        state.methods[pm["id"]] = pm
        session["status"] = "complete"
        session["setup_intent"].update(status="succeeded", payment_method=pm["id"])
        return RedirectResponse(session["success_url"].replace("{CHECKOUT_SESSION_ID}", sid), status_code=303)


def signed(payload: dict[str, Any] | bytes, secret: str, *, at: int | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body as Stripe signs a webhook: v1 = HMAC-SHA256(secret, "t.body")."""
    import hashlib
    import hmac

    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    ts = int(time.time()) if at is None else at
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={ts},v1={sig}"}, body
