"""Provider webhooks: verify, de-duplicate by the provider's event id, apply once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.payments.models import Payment, Refund, WebhookReceipt
from engine.payments.outcomes import apply_charge_outcome
from engine.payments.provider import WebhookRejected
from engine.payments.refunds import apply_refund_outcome
from engine.payments.service import PaymentService

if TYPE_CHECKING:
    from engine.store import Database


@dataclass(frozen=True)
class WebhookResult:
    """status: applied | duplicate | unknown (no such payment here yet: not recorded, so the
    provider's redelivery or `repair_pending` brings it in later)."""

    status: str
    event_id: str
    payment_id: str | None = None
    refund_id: str | None = None
    state: str | None = None


def _record_receipt(session: Session, provider: str, event_id: str, type_: str, svc: PaymentService) -> bool:
    values = {"provider": provider, "event_id": event_id, "type": type_, "received_at": svc.now()}
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: an ORM-enabled INSERT reports rowcount -1 on psycopg.
    stmt = insert(WebhookReceipt).values(**values).on_conflict_do_nothing().returning(WebhookReceipt.id)
    return session.execute(stmt).first() is not None


def apply_webhook(
    session: Session,
    provider: str,
    headers: dict[str, str],
    body: bytes,
    *,
    service: PaymentService,
) -> WebhookResult:
    """Raises WebhookRejected (bad signature, stale or replayed timestamp, malformed body);
    nothing is recorded then."""
    svc = service
    adapter = svc.adapter(provider)
    event = adapter.parse_webhook(headers, body)
    if event.payment is not None:
        out = event.payment
        conditions = [Payment.provider_ref == out.provider_ref] if out.provider_ref else []
        if out.idempotency_key:
            conditions.append(Payment.idempotency_key == out.idempotency_key)
        payment = session.scalars(
            select(Payment).where(Payment.provider == provider, or_(*conditions)).with_for_update()
        ).first() if conditions else None
        if payment is None:
            return WebhookResult("unknown", event.event_id)
        if not _record_receipt(session, provider, event.event_id, event.type, svc):
            return WebhookResult("duplicate", event.event_id, payment_id=payment.id, state=payment.status)
        state = apply_charge_outcome(session, svc, payment, out)
        return WebhookResult("applied", event.event_id, payment_id=payment.id, state=state)
    if event.refund is not None:
        r_out = event.refund
        r_conditions = [Refund.provider_ref == r_out.provider_ref] if r_out.provider_ref else []
        if r_out.idempotency_key:
            r_conditions.append(Refund.idempotency_key == r_out.idempotency_key)
        refund = session.scalars(
            select(Refund).where(Refund.provider == provider, or_(*r_conditions)).with_for_update()
        ).first() if r_conditions else None
        if refund is None:
            return WebhookResult("unknown", event.event_id)
        if not _record_receipt(session, provider, event.event_id, event.type, svc):
            return WebhookResult("duplicate", event.event_id, refund_id=refund.id, state=refund.status)
        state = apply_refund_outcome(session, svc, refund, r_out)
        return WebhookResult("applied", event.event_id, refund_id=refund.id, state=state)
    raise WebhookRejected(f"webhook {event.event_id} carries neither a payment nor a refund")


def webhook_router(database: Database, service: PaymentService) -> APIRouter:
    """POST /webhooks/psp/{provider}: mount it in the API (no bearer auth: the signature is
    the authentication). 200 applied/duplicate, 202 unknown payment, 400 rejected."""
    router = APIRouter()

    @router.post("/webhooks/psp/{provider}")
    async def receive(provider: str, request: Request) -> JSONResponse:
        body = await request.body()
        headers = dict(request.headers)

        def run() -> JSONResponse:
            svc = service
            if provider not in svc.adapters:
                return _problem(404, "unknown provider", f"no adapter for {provider!r}")
            try:
                with database.session() as session:
                    result = apply_webhook(session, provider, headers, body, service=svc)
            except WebhookRejected as exc:
                return _problem(400, "webhook rejected", str(exc))
            payload: dict[str, Any] = {"status": result.status, "event_id": result.event_id,
                                       "state": result.state}
            return JSONResponse(payload, status_code=202 if result.status == "unknown" else 200)

        return await anyio.to_thread.run_sync(run)

    def _problem(status: int, title: str, detail: str) -> JSONResponse:
        return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail},
                            status_code=status, media_type="application/problem+json")

    return router
