"""A customer's notifications over HTTP: the in-app feed, marking it read, and the webhook
endpoints the customer's webhook notifications go to (listed, registered, disabled).
Messaging's alone: that the customer exists is asked through `ctx.read.customer`
(engine.system binds it to sales)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from engine import messaging
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.errors import domain_errors
from engine.api.problems import Problem, documented
from engine.api.types import ZonedTime

# The billing router's tag and documented answers: these routes were its own.
router = APIRouter(prefix="/v1", tags=["billing"], responses=documented(400, 401, 403, 404, 409, 413, 422))


@router.get("/customers/{customer_id}/notifications", dependencies=[ADMIN], summary="The in-app feed")
def notifications(
    customer_id: str,
    channel: Literal["in_app"] = "in_app",
    unread: bool = False,
    limit: int = Query(50, ge=1, le=500),
    before: ZonedTime | None = Query(None, description="entries created before this time (with a zone)"),
    ctx: ApiContext = Depends(context),
) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        ctx.read.customer(session, customer_id)
        items = messaging.list_feed(session, customer_id, unread_only=unread, limit=limit, before=before)
        unread_count = messaging.unread_count(session, customer_id)
    return {"items": items, "unread": unread_count, "channel": channel}


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] | None = Field(default=None, description="the entries to mark read; all when absent")


@router.post("/customers/{customer_id}/notifications/read", dependencies=[ADMIN], summary="Mark in-app entries read")
def mark_read(customer_id: str, body: ReadIn, ctx: ApiContext = Depends(context)) -> dict[str, int]:
    with domain_errors(), ctx.db.session() as session:
        ctx.read.customer(session, customer_id)
        changed = messaging.mark_read(session, customer_id, body.ids, now=ctx.clock.now())
    return {"marked": changed}


@router.get(
    "/customers/{customer_id}/notification-webhooks",
    dependencies=[ADMIN],
    summary="The URLs a customer's webhook notifications go to (never their secrets)",
)
def notification_webhooks(customer_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        ctx.read.customer(session, customer_id)
        endpoints = messaging.list_webhook_endpoints(session, customer_id)
    return {"items": [e.public() for e in endpoints]}


# The format is the event webhooks' (engine/api/routes/webhooks.py): whether a URL is allowed
# depends on the deployment and on what its host resolves to, checked by messaging.
NotificationUrl = Annotated[
    str,
    Field(min_length=1, max_length=messaging.MAX_WEBHOOK_URL),
    WithJsonSchema(
        {
            "type": "string",
            "format": "webhook-url",
            "minLength": 1,
            "maxLength": messaging.MAX_WEBHOOK_URL,
            "description": "the http(s) URL the customer's webhook notifications are posted to (at most 2,000 "
            "characters; not a private or loopback address unless the deployment allows it)",
        }
    ),
]


class NotificationWebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: NotificationUrl


class NotificationWebhookOut(BaseModel):
    id: str
    url: str
    enabled: bool


class NotificationWebhookCreated(NotificationWebhookOut):
    secret: str = Field(description="signs every delivery; shown here once, never again")


@contextmanager
def _url_problems() -> Iterator[None]:
    try:
        yield
    except messaging.EndpointUrlRefused as exc:
        raise Problem(422, str(exc), "url") from None


@router.post(
    "/customers/{customer_id}/notification-webhooks",
    dependencies=[ADMIN],
    status_code=201,
    summary="Register a URL for a customer's webhook notifications (its secret is shown once)",
)
def add_notification_webhook(
    customer_id: str, body: NotificationWebhookIn, ctx: ApiContext = Depends(context)
) -> NotificationWebhookCreated:
    with domain_errors(), _url_problems(), ctx.db.session() as session:
        ctx.read.customer(session, customer_id)
        made = messaging.add_webhook_endpoint(
            session, customer_id, body.url, now=ctx.clock.now(), allow_private=ctx.webhooks_allow_private
        )
    return NotificationWebhookCreated(id=made.id, url=made.url, enabled=made.enabled, secret=made.secret)


@router.delete(
    "/customers/{customer_id}/notification-webhooks/{endpoint_id}",
    dependencies=[ADMIN],
    summary="Disable one of a customer's notification webhooks (nothing more is posted to it)",
)
def disable_notification_webhook(
    customer_id: str, endpoint_id: str, ctx: ApiContext = Depends(context)
) -> NotificationWebhookOut:
    with domain_errors(), ctx.db.session() as session:
        ctx.read.customer(session, customer_id)
        if not messaging.disable_webhook_endpoint(session, endpoint_id, customer_id=customer_id):
            raise Problem(404, f"customer {customer_id} has no notification webhook {endpoint_id}", "endpoint_id")
        gone = next(e for e in messaging.list_webhook_endpoints(session, customer_id) if e.id == endpoint_id)
    return NotificationWebhookOut(id=gone.id, url=gone.url, enabled=gone.enabled)
