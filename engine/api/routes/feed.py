"""A customer's notifications over HTTP: the in-app feed, marking it read, and the webhook
endpoints the customer's webhook notifications go to. Messaging's alone: that the customer exists is asked through `ctx.read.customer` (engine.system binds it
to sales)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from engine import messaging
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.errors import domain_errors
from engine.api.problems import documented
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
