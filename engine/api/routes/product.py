"""What the product calls: usage events, access checks, quotes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from engine import sales
from engine.api.context import ApiContext
from engine.api.deps import PRODUCT, context
from engine.api.errors import domain_errors
from engine.api.problems import Problem
from engine.periods import Period
from engine.pricing import bill_to_dict, parse_event
from engine.pricing.quoting import quote, resolve_plan

router = APIRouter(prefix="/v1", tags=["product"])

EVENT_EXAMPLE = {
    "id": "evt_01JD3K9",
    "type": "api.request",
    "customer_id": "cus_42",
    "time": "2026-11-23T10:00:00Z",
    "properties": {"endpoint": "/v1/search"},
}


class AccessCheck(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"customer_id": "cus_42", "feature": "api", "quantity": 1}]}
    )

    customer_id: str = Field(min_length=1, max_length=64)
    feature: str = Field(min_length=1, max_length=100)
    quantity: Decimal = Field(default=Decimal(1), gt=0, description="would this many more units be allowed?")
    in_use: Decimal | None = Field(default=None, ge=0, description="units of a quantity feature in use now")


class AccessDecision(BaseModel):
    allowed: bool
    feature: str
    reason: str
    limit: int | str | None
    used: int | str | None
    remaining: int | str | None
    plan: str | None
    rules: list[str]
    offer: dict[str, Any] | None


class IngestReport(BaseModel):
    received: int
    accepted: int
    duplicates: int


@router.post(
    "/events",
    response_model=IngestReport,
    status_code=202,
    dependencies=[PRODUCT],
    summary="Record usage and product events (one envelope or a list)",
)
def post_events(
    body: dict[str, Any] | list[dict[str, Any]] = Body(..., examples=[EVENT_EXAMPLE, [EVENT_EXAMPLE]]),
    ctx: ApiContext = Depends(context),
) -> dict[str, int]:
    events = body if isinstance(body, list) else [body]
    if not events:
        raise Problem(422, "send at least one event", "body")
    if len(events) > 10_000:
        raise Problem(413, "at most 10,000 events per request", "body")
    # Validate every event before writing any: a bad batch changes nothing.
    for i, raw in enumerate(events):
        where = f"[{i}]" if isinstance(body, list) else ""
        try:
            parse_event(raw, "event")
        except ValueError as exc:
            message = str(exc).removeprefix("event: ")
            field, _, detail = message.partition(": ")
            raise Problem(422, detail or message, f"{where}.{field}".lstrip(".") if where else field) from None
        if not isinstance(raw.get("customer_id"), str) or not raw["customer_id"]:
            raise Problem(
                422,
                "required: the customer the event belongs to",
                f"{where}.customer_id".lstrip(".") if where else "customer_id",
            )
    with domain_errors(), ctx.db.session() as session:
        result = sales.ingest_events(session, events, clock=ctx.clock)
    ctx.access.usage_changed([e["customer_id"] for e in events])
    ctx.after_commit()
    return result.as_dict()


@router.post(
    "/access/check",
    dependencies=[PRODUCT],
    response_model=AccessDecision | list[AccessDecision],
    summary="May this customer use this feature? (one check or a list)",
)
def access_check(body: AccessCheck | list[AccessCheck], ctx: ApiContext = Depends(context)) -> Any:
    checks = body if isinstance(body, list) else [body]
    if len(checks) > 1000:
        raise Problem(413, "at most 1,000 checks per request", "body")
    out = []
    for i, check in enumerate(checks):
        with domain_errors(f"[{i}]." if isinstance(body, list) else ""):
            decision = ctx.access.check(check.customer_id, check.feature, check.quantity, check.in_use)
        out.append(decision.to_dict())
    if any(not d["allowed"] for d in out):
        ctx.after_commit()  # access.denied events were written
    return out if isinstance(body, list) else out[0]


class QuoteRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "plan": "pro",
                    "quantity": "3",
                    "usage": {"api_calls": "15000"},
                    "coupon": "WELCOME20",
                    "customer": {"segment": "edu", "country": "CH"},
                    "period": "2026-11-01/2026-12-01",
                    "rules": True,
                }
            ]
        },
    )

    plan: str = Field(min_length=1)
    quantity: str | int = "1"
    usage: dict[str, str | int] = Field(default_factory=dict)
    events: list[dict[str, Any]] = Field(default_factory=list)
    coupon: str | None = None
    customer: dict[str, Any] = Field(default_factory=dict)
    customer_id: str | None = Field(default=None, description="quote for a stored customer (tax, segment, tags)")
    period: str | None = Field(default=None, description="START/END as ISO dates")
    rules: bool = Field(default=True, description="apply the published pricing rules")


@router.post("/quotes", dependencies=[PRODUCT], summary="Price a plan for one period (FORMATS §5)")
def post_quote(body: QuoteRequest, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    period = None
    if body.period:
        try:
            period = Period.parse(body.period)
        except ValueError as exc:
            raise Problem(422, str(exc), "period") from None
    events = []
    for i, raw in enumerate(body.events):
        try:
            events.append(parse_event(raw, f"events[{i}]"))
        except ValueError as exc:
            field, _, detail = str(exc).partition(": ")
            sub, _, detail2 = detail.partition(": ")
            raise Problem(422, detail2 or detail, f"{field}.{sub}" if detail2 else field) from None
    with domain_errors(), ctx.db.session() as session:
        _, catalog, _ = sales.latest_version_for_plan(session, body.plan)
        customer = dict(body.customer)
        if body.customer_id:
            stored = sales.get_customer(session, body.customer_id)
            customer = {**stored, **customer}
    today: date = ctx.clock.now().date()
    with domain_errors():
        plan = resolve_plan(catalog, body.plan)
        bill = quote(
            catalog,
            plan,
            today=today,
            quantity=body.quantity,
            usage=body.usage,
            events=events,
            coupon=body.coupon,
            customer=customer,
            period=period,
            promotions=ctx.promotions if body.rules else None,
        )
    return bill_to_dict(bill, catalog.rounder)
