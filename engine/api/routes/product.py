"""What the product calls: usage events, access checks, quotes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from engine import sales
from engine.api.context import ApiContext
from engine.api.deps import PRODUCT, authorize, context
from engine.api.errors import domain_errors
from engine.api.fast_check import decide_inline
from engine.api.problems import Problem, documented
from engine.api.types import (
    EARLIEST,
    LATEST,
    CouponCode,
    CustomerId,
    JsonBool,
    Matches,
    MetricId,
    NonNegativeQuantity,
    ObjectId,
    PlanId,
    PositiveQuantity,
    SeatCount,
    ZonedTime,
    finite_json,
    keys_match_their_pattern,
)
from engine.periods import Period
from engine.pricing import UsageEvent, bill_to_dict, parse_event
from engine.pricing.quoting import quote, resolve_plan

router = APIRouter(prefix="/v1", tags=["product"], responses=documented(400, 401, 403, 404, 413, 422))

EVENT_EXAMPLE: dict[str, Any] = {
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

    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    feature: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_.-]*$")
    quantity: PositiveQuantity = Field(default=Decimal(1), description="would this many more units be allowed?")
    in_use: NonNegativeQuantity | None = Field(default=None, description="units of a quantity feature in use now")


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


class EventIn(BaseModel):
    """An event envelope (FORMATS §3). `id` is the idempotency key."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EVENT_EXAMPLE]})

    id: str = Field(min_length=1, max_length=200, pattern=r"^[!-~]+$", description="printable ASCII, no spaces")
    type: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z][A-Za-z0-9_.:-]*$")
    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    time: ZonedTime = Field(
        description="ISO 8601 with a zone (Z or +00:00), from 1970 to 2199"
    )
    properties: Annotated[dict[str, Any], AfterValidator(finite_json)] = Field(
        default_factory=dict, description="JSON values; no NaN or Infinity, nested at most 8 deep"
    )


EventBatch = Annotated[list[EventIn], Field(min_length=1, max_length=10_000)]


@router.post(
    "/events",
    response_model=IngestReport,
    status_code=202,
    dependencies=[PRODUCT],
    responses=documented(409),
    summary="Record usage and product events (one envelope or a list)",
    description="The id is the idempotency key: the same id with the same event is a replay (counted in "
    "`duplicates`, nothing stored again); the same id with another body is a 409 naming the id, and "
    "nothing of the batch is stored.",
)
def post_events(
    body: EventIn | EventBatch = Body(..., examples=[EVENT_EXAMPLE, [EVENT_EXAMPLE]]),
    ctx: ApiContext = Depends(context),
) -> dict[str, int]:
    items = body if isinstance(body, list) else [body]
    # The whole batch was validated before anything is written: a bad batch changes nothing.
    events = [{**e.model_dump(), "time": e.time.isoformat()} for e in items]
    customers = [e.customer_id for e in items]
    # Taken before the transaction: the new events are added to these snapshots in memory,
    # rather than every customer's usage being read again on its next check.
    before = ctx.access.before_usage(customers)
    with domain_errors(), ctx.db.session() as session:
        result = sales.ingest_events(session, events, clock=ctx.clock, recorded_id=before.recorded_id)
    ctx.access.usage_changed(customers, result.recorded_event_id, stored=result.stored, before=before)
    ctx.after_commit()
    return result.as_dict()


CheckBatch = Annotated[list[AccessCheck], Field(min_length=1, max_length=1000)]
CHECKS: TypeAdapter[AccessCheck | list[AccessCheck]] = TypeAdapter(AccessCheck | CheckBatch)
_ONE_CHECK = AccessCheck.model_json_schema()
CHECKS_SCHEMA: dict[str, Any] = {
    "anyOf": [_ONE_CHECK, {"type": "array", "items": _ONE_CHECK, "minItems": 1, "maxItems": 1000}]
}


@router.post(
    "/access/check",
    response_model=AccessDecision | list[AccessDecision],
    summary="May this customer use this feature? (one check or a list)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": CHECKS_SCHEMA}}}},
)
async def access_check(request: Request) -> Any:
    # The hottest call: authorised and parsed inline (pydantic straight from the bytes)
    # rather than through dependency injection, which costs more than the decision itself.
    # Same key check, same body model and the same problem answers as every other route.
    await authorize(request, "product")
    ctx: ApiContext = request.app.state.ctx
    try:
        body = CHECKS.validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    checks = body if isinstance(body, list) else [body]
    out = []
    for i, check in enumerate(checks):
        with domain_errors(f"[{i}]." if isinstance(body, list) else ""):
            # Served on the event loop when it can be; a customer to load on PostgreSQL, or a
            # threshold to write, goes to the threadpool.
            args = (check.customer_id, check.feature, check.quantity, check.in_use)
            decision = decide_inline(ctx.access, *args)
            if decision is None:
                decision = await run_in_threadpool(ctx.access.check, *args)
        out.append(decision.to_dict())
    # Returned as built: the decision is already plain JSON data, and re-validating it
    # against the response model (still documented in the schema) costs more than deciding.
    return Response(to_json(out if isinstance(body, list) else out[0]), media_type="application/json")


MAX_PERIOD_DAYS = 3660  # ten years: longer than any plan's interval
# A quote's period, as far as a pattern can say it; its format names the rest (real dates,
# END after START, the length), which JSON Schema cannot express.
_DAY = r"(19[7-9][0-9]|2[01][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
PERIOD_PATTERN = rf"^{_DAY}/({_DAY}|2200-01-01)$"
PERIOD_FORMAT = "date-interval"
PeriodText = Annotated[
    str, Matches(PERIOD_PATTERN, "a period START/END of ISO dates, e.g. 2026-11-01/2026-12-01"),
    Field(json_schema_extra={"format": PERIOD_FORMAT}),
]


class QuoteEvent(BaseModel):
    """An event envelope to price (FORMATS §3); its customer is the quote's."""

    id: str = Field(min_length=1, max_length=200, pattern=r"^[!-~]+$", description="printable ASCII, no spaces")
    type: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z][A-Za-z0-9_.:-]*$")
    customer_id: CustomerId | None = None
    time: ZonedTime
    properties: Annotated[dict[str, Any], AfterValidator(finite_json)] = Field(
        default_factory=dict, description="JSON values; no NaN or Infinity, nested at most 8 deep"
    )


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
            ],
            # A plan with its inputs, or a subscription with only a period and rules (a given
            # one: null is "not given").
            "oneOf": [
                {"required": ["plan"], "properties": {"plan": {"type": "string"}},
                 "not": {"required": ["subscription_id"], "properties": {"subscription_id": {"type": "string"}}}},
                {"required": ["subscription_id"], "properties": {"subscription_id": {"type": "string"}},
                 "propertyNames": {"enum": ["subscription_id", "period", "rules"]}},
            ],
        },
    )

    plan: PlanId | None = Field(default=None, description="the plan to price (or give subscription_id)")
    subscription_id: ObjectId | None = Field(
        default=None,
        description="quote a subscription's current period (or `period`, one of its periods) as the engine "
        "invoices it: its plan, quantity, coupon, customer, the published pricing rules and its recorded usage",
    )
    quantity: SeatCount = Field(default=Decimal(1), description="the subscription's quantity (seats)")
    usage: dict[MetricId, NonNegativeQuantity] = Field(
        default_factory=dict, max_length=200, description="by metric id of the plan's catalog (else a 404)",
        json_schema_extra=keys_match_their_pattern,
    )
    events: list[QuoteEvent] = Field(default_factory=list, max_length=10_000)
    coupon: CouponCode | None = None
    customer: dict[str, Any] = Field(default_factory=dict)
    customer_id: CustomerId | None = Field(default=None, description="quote for a stored customer (tax, segment, tags)")
    period: PeriodText | None = Field(
        default=None,
        description=f"START/END as ISO dates: real days, END after START, from 1970 to 2200-01-01, at most "
        f"{MAX_PERIOD_DAYS} days (what the pattern cannot say; else a 422 naming period)",
    )
    rules: JsonBool = Field(default=True, description="apply the published pricing rules")


_OWN_INPUTS = {"subscription_id", "period", "rules"}


@router.post("/quotes", dependencies=[PRODUCT], responses=documented(409), summary="Price a plan, or a subscription, for one period (FORMATS §5)")
def post_quote(body: QuoteRequest, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    period = _quote_period(body.period) if body.period else None
    if body.subscription_id is not None:
        return _subscription_quote(body, period, ctx)
    if body.plan is None:
        raise Problem(422, "give a plan or a subscription_id", "plan")
    events = [_quote_event(given, i) for i, given in enumerate(body.events)]
    with domain_errors(), ctx.db.read_session() as session:
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


def _quote_period(text: str) -> Period:
    try:
        period = Period.parse(text)
    except ValueError as exc:
        raise Problem(422, str(exc), "period") from None
    if not (EARLIEST.date() <= period.start and period.end <= LATEST.date()) or period.days > MAX_PERIOD_DAYS:
        raise Problem(422, f"a period from 1970 to 2199, at most {MAX_PERIOD_DAYS} days long", "period")
    return period


def _quote_event(given: QuoteEvent, i: int) -> UsageEvent:
    """A usage event of the request, its problem located at its field ("events[0].time")."""
    raw = {**given.model_dump(exclude_none=True), "time": given.time.isoformat()}
    try:
        return parse_event(raw, f"events[{i}]")
    except ValueError as exc:
        field, _, detail = str(exc).partition(": ")
        sub, _, detail2 = detail.partition(": ")
        raise Problem(422, detail2 or detail, f"{field}.{sub}" if detail2 else field) from None


def _subscription_quote(body: QuoteRequest, period: Period | None, ctx: ApiContext) -> dict[str, Any]:
    extra = sorted(body.model_fields_set - _OWN_INPUTS)
    if extra:
        raise Problem(422, "a subscription is quoted with its own inputs: give only period and rules", extra[0])
    assert body.subscription_id is not None
    with domain_errors(), ctx.db.read_session() as session:
        found = sales.quote_subscription(
            session, body.subscription_id, period=period, promotions=ctx.promotions if body.rules else None
        )
    doc = found.document
    out = {
        **bill_to_dict(doc, doc.catalog.rounder),
        "subscription_id": found.subscription_id,
        "mid_period_changes": found.mid_period_changes,
    }
    if found.progressive_invoices:  # billed early; the period's close deducts it from `total`
        out["progressively_invoiced"] = doc.catalog.rounder.fmt(found.progressively_invoiced)
        out["progressive_invoices"] = list(found.progressive_invoices)
    return out
