"""The product's event webhooks over HTTP (admin keys): register endpoints, read their
delivery log, replay one delivery or a time range. Bad input is a problem naming the field,
and nothing is written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from engine import webhooks
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.problems import Problem, documented
from engine.api.types import JSON_INTEGER, JsonBool, ZonedTime

# Whether a URL is allowed depends on the deployment (https, public addresses) and on what its
# host resolves to: checked by the URL policy, named in the schema by this format
# (tests/api/test_schemathesis.py generates public https URLs for it).
URL_FORMAT = "webhook-url"
Url = Annotated[str, WithJsonSchema({
    "type": "string", "format": URL_FORMAT, "minLength": 1,
    "description": "the https URL events are posted to (at most 2,000 characters; not a private or loopback "
                   "address unless the deployment allows it)"})]
Pattern = Literal[webhooks.PATTERNS]  # type: ignore[valid-type]
Patterns = Annotated[list[Pattern], Field(
    min_length=1, max_length=50,
    description="event types (invoice.paid), a prefix (invoice.*), or * for every event the engine delivers")]
Description = Annotated[str, Field(max_length=500)]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url
    event_types: Patterns
    description: Description = ""


class EndpointChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url | None = None
    event_types: Patterns | None = None
    description: Description | None = None
    enabled: JsonBool | None = None


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_hours: Annotated[int, Field(ge=0, le=168), JSON_INTEGER] = Field(
        24, description="how long the old secret keeps signing too")


class RangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: ZonedTime = Field(alias="from", description="events at or after this time")
    end: ZonedTime = Field(alias="to", description="events before this time (an empty range replays nothing)")


@contextmanager
def _problems() -> Iterator[None]:
    """The package's refusals as problems naming the field."""
    try:
        yield
    except webhooks.PatternError as exc:
        raise Problem(422, str(exc), f"event_types[{exc.index}]") from None
    except webhooks.UrlError as exc:
        raise Problem(422, str(exc), "url") from None
    except webhooks.NotFound as exc:
        raise Problem(404, str(exc), exc.field) from None


def webhooks_router(policy: webhooks.UrlPolicy, *, wake: Callable[[], None] = lambda: None) -> APIRouter:
    """The routes, checking endpoint URLs with `policy`; `wake` tells the sender a replay waits."""
    router = APIRouter(tags=["webhooks"], dependencies=[ADMIN], responses=documented(400, 401, 403, 404, 422))

    @router.post("/v1/webhook-endpoints", status_code=201, summary="Register an endpoint (its secret is shown once)")
    def create(body: EndpointIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
        with _problems(), ctx.db.session() as session:
            made = webhooks.create_endpoint(session, body.url, body.event_types, now=ctx.clock.now(),
                                            policy=policy, description=body.description)
        return made.public()

    @router.get("/v1/webhook-endpoints", summary="The registered endpoints")
    def listing(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
        with ctx.db.read_session() as session:
            return {"items": [e.public() for e in webhooks.list_endpoints(session)]}

    @router.get("/v1/webhook-endpoints/{endpoint_id}", summary="One endpoint")
    def one(endpoint_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
        with _problems(), ctx.db.read_session() as session:
            return webhooks.get_endpoint(session, endpoint_id).public()

    @router.patch("/v1/webhook-endpoints/{endpoint_id}", summary="Change an endpoint's URL, events, description or enable it")
    def change(endpoint_id: str, body: EndpointChange, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
        with _problems(), ctx.db.session() as session:
            return webhooks.update_endpoint(session, endpoint_id, now=ctx.clock.now(), policy=policy,
                                            **body.model_dump(exclude_none=True)).public()

    @router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
                 summary="A new secret; the old one signs beside it for the grace period")
    def rotate(endpoint_id: str, body: RotateIn | None = None, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
        grace = timedelta(hours=body.grace_hours if body is not None else 24)
        with _problems(), ctx.db.session() as session:
            return webhooks.rotate_secret(session, endpoint_id, now=ctx.clock.now(), grace=grace).public()

    @router.get("/v1/webhook-endpoints/{endpoint_id}/deliveries",
                summary="The delivery log: status, attempts, response code and latency, newest first")
    def deliveries(endpoint_id: str, ctx: ApiContext = Depends(context),
                   status: Annotated[str | None, Query(pattern="^(pending|delivered|dead)$")] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        with _problems(), ctx.db.read_session() as session:
            return {"items": webhooks.list_deliveries(session, endpoint_id, status=status, limit=limit)}

    @router.post("/v1/webhook-endpoints/{endpoint_id}/replay", status_code=201,
                 summary="Send again every delivery whose event happened in [from, to)")
    def replay_range(endpoint_id: str, body: RangeIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
        with _problems(), ctx.db.session() as session:
            items = webhooks.replay_range(session, endpoint_id, body.start, body.end, now=ctx.clock.now())
        wake()
        return {"items": items}

    @router.get("/v1/webhook-deliveries/{delivery_id}", summary="One delivery")
    def delivery(delivery_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
        with _problems(), ctx.db.read_session() as session:
            return webhooks.get_delivery(session, delivery_id)

    @router.post("/v1/webhook-deliveries/{delivery_id}/replay", status_code=201,
                 summary="Send one delivery again (same body and webhook-id)")
    def replay(delivery_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
        with _problems(), ctx.db.session() as session:
            made = webhooks.replay_delivery(session, delivery_id, now=ctx.clock.now())
        wake()
        return made

    return router


__all__ = ["webhooks_router"]
