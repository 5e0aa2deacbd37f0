"""Provider webhooks: verify, de-duplicate by the provider's event id, apply once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.payments.models import Payment, Refund, WebhookReceipt
from engine.payments.outcomes import apply_charge_outcome
from engine.payments.provider import ChargeOutcome, RefundOutcome, WebhookEvent, WebhookRejected
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
        return _payment_webhook(session, svc, provider, event, event.payment)
    if event.refund is not None:
        return _refund_webhook(session, svc, provider, event, event.refund)
    raise WebhookRejected(f"webhook {event.event_id} carries neither a payment nor a refund")


_Row = TypeVar("_Row", Payment, Refund)


def _locked(session: Session, model: type[_Row], provider: str, provider_ref: str | None,
            key: str | None) -> _Row | None:
    """The provider's payment or refund by its reference or our idempotency key, locked."""
    conditions = [model.provider_ref == provider_ref] if provider_ref else []
    if key:
        conditions.append(model.idempotency_key == key)
    if not conditions:
        return None
    return session.scalars(select(model).where(model.provider == provider, or_(*conditions)).with_for_update()).first()


def _payment_webhook(session: Session, svc: PaymentService, provider: str, event: WebhookEvent,
                     out: ChargeOutcome) -> WebhookResult:
    payment = _locked(session, Payment, provider, out.provider_ref, out.idempotency_key)
    if payment is None:
        return WebhookResult("unknown", event.event_id)
    if not _record_receipt(session, provider, event.event_id, event.type, svc):
        return WebhookResult("duplicate", event.event_id, payment_id=payment.id, state=payment.status)
    state = apply_charge_outcome(session, svc, payment, out)
    return WebhookResult("applied", event.event_id, payment_id=payment.id, state=state)


def _refund_webhook(session: Session, svc: PaymentService, provider: str, event: WebhookEvent,
                    out: RefundOutcome) -> WebhookResult:
    refund = _locked(session, Refund, provider, out.provider_ref, out.idempotency_key)
    if refund is None:
        return WebhookResult("unknown", event.event_id)
    if not _record_receipt(session, provider, event.event_id, event.type, svc):
        return WebhookResult("duplicate", event.event_id, refund_id=refund.id, state=refund.status)
    state = apply_refund_outcome(session, svc, refund, out)
    return WebhookResult("applied", event.event_id, refund_id=refund.id, state=state)


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
