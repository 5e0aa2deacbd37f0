"""Health, metrics and API key administration."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from engine.api import keys
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.problems import Problem, documented

router = APIRouter(tags=["operations"], responses=documented(400, 401, 403, 404, 422))


@router.get("/health", summary="Liveness and database reachability (no key needed)")
def health(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    try:
        with ctx.db.read_session() as session:
            session.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        database = "unreachable"
    return {
        "status": "ok" if database == "ok" else "degraded",
        "database": database,
        "time": ctx.clock.now().isoformat(),
        "test_clock": ctx.test_clock is not None,
    }


@router.get(
    "/metrics",
    dependencies=[ADMIN],
    response_class=PlainTextResponse,
    summary="Prometheus metrics (events per queue, access checks)",
)
def metrics(ctx: ApiContext = Depends(context)) -> str:
    view = ctx.access.view
    lines = [
        "# HELP billing_access_view_hits_total Access checks served from the in-memory view.",
        "# TYPE billing_access_view_hits_total counter",
        f"billing_access_view_hits_total {view.hits}",
        "# HELP billing_access_view_misses_total Access checks that loaded the customer from the store.",
        "# TYPE billing_access_view_misses_total counter",
        f"billing_access_view_misses_total {view.misses}",
    ]
    return ctx.metrics_text() + "\n".join(lines) + "\n"


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Literal["product", "admin", "finance"]
    name: str = ""


@router.post(
    "/v1/api-keys", status_code=201, dependencies=[ADMIN], tags=["operations"], summary="Create an API key (shown once)"
)
def create_key(body: KeyIn, ctx: ApiContext = Depends(context)) -> dict[str, str]:
    with ctx.db.session() as session:
        key_id, key = keys.create_key(session, body.scope, now=ctx.clock.now(), name=body.name)
    return {"id": key_id, "scope": body.scope, "key": key}


@router.delete(
    "/v1/api-keys/{key_id}", status_code=204, dependencies=[ADMIN], tags=["operations"], summary="Revoke an API key"
)
def revoke_key(key_id: str, ctx: ApiContext = Depends(context)) -> None:
    with ctx.db.session() as session:
        if not keys.revoke_key(session, key_id, now=ctx.clock.now()):
            raise Problem(404, f"no active key {key_id!r}", "key_id")
    ctx.keys.forget(key_id)
