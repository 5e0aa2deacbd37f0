"""Why? The decision log of one customer: why they were charged, denied, dunned or messaged."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from engine import rules, sales
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.errors import domain_errors
from engine.api.problems import documented

router = APIRouter(prefix="/v1", tags=["billing"], responses=documented(401, 403, 404, 422))


class DecisionOut(BaseModel):
    id: str = Field(description="the decision-log entry (an access check's `decision_id`) or the event that records it")
    time: str
    kind: Literal["access", "charge", "dunning", "message"]
    subject: str | None = Field(description="the feature, invoice, template or `account` it was about")
    outcome: str = Field(description="deny / allow; paid / failed; the new dunning state; sent / failed")
    reason: str
    rule: str | None = Field(description="`ruleset/rule` that decided; null when the plan or the engine did")
    event_id: str | None = Field(description="the event that caused it")


class DecisionsOut(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{"items": [{
        "id": "dec_01JD8Z", "time": "2026-11-23T10:00:00Z", "kind": "access", "subject": "api",
        "outcome": "deny", "reason": "quota_exceeded", "rule": None, "event_id": None}]}]}}
    items: list[DecisionOut]


@router.get(
    "/customers/{customer_id}/decisions",
    dependencies=[ADMIN],
    response_model=DecisionsOut,
    summary="Why a customer was charged, denied, dunned or messaged (newest first)",
)
def customer_decisions(
    customer_id: str,
    kind: Literal["access", "charge", "dunning", "message"] | None = Query(None, description="only this kind"),
    limit: int = Query(50, ge=1, le=500),
    ctx: ApiContext = Depends(context),
) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        sales.get_customer(session, customer_id)  # an unknown customer is a 404 naming customer_id
        items = rules.customer_decisions(session, customer_id, kind=kind, limit=limit)
    return {"items": items}
