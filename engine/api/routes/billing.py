"""The billing resources: customers, subscriptions, invoices, the in-app feed, the test clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from engine import sales
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.errors import domain_errors
from engine.api.problems import Problem, documented
from engine.api.routes.payments import PaymentMethodIn, attach, invoice_payments, use_stored_method
from engine.api.types import JSON_INTEGER, CouponCode, CustomerId, Matches, OneOf, PlanId, SeatCount, ZonedTime
from engine.durations import parse_duration, up_to
from engine.events.settle import NotSettled
from engine.money import KNOWN_CURRENCIES

# A phone number as sales.customers reads one, without the spaces it would strip around it.
PHONE_PATTERN = r"^\+?[0-9()./-][0-9 ()./-]{2,38}[0-9()./-]$"
CurrencyCode = Annotated[str, OneOf(KNOWN_CURRENCIES, "an ISO 4217 currency code the engine knows (upper case)")]
TimeZoneName = Annotated[str, OneOf(frozenset(available_timezones()), "an IANA time zone name, e.g. Europe/Zurich")]

router = APIRouter(prefix="/v1", tags=["billing"], responses=documented(400, 401, 403, 404, 409, 413, 422))


class CustomerIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "cus_42",
                    "email": "ada@example.com",
                    "name": "Ada Ltd",
                    "country": "CH",
                    "segment": "edu",
                    "tags": ["partner"],
                }
            ]
        },
    )

    # Each field says exactly what sales.create_customer accepts, so that a value the schema
    # allows is stored and one it does not is a 422 naming the field. null: not given.
    id: CustomerId | None = Field(default=None, description="default: a generated cus_... id")
    email: Annotated[str, Matches(sales.EMAIL_PATTERN, "an email address")] = Field(max_length=320)
    name: str = Field(max_length=200)
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2, e.g. DE")
    segment: str | None = Field(default=None, max_length=100)
    tags: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)
    phone: Annotated[str, Matches(PHONE_PATTERN, "a phone number: digits, spaces and ()./-, 4 to 40")] | None = None
    currency: CurrencyCode | None = Field(default=None, description="ISO 4217, upper case; default: the plan's")
    tax_id: str | None = Field(default=None, max_length=100)
    timezone: TimeZoneName | None = Field(default=None, description="an IANA time zone; default: UTC")
    preferred_channels: list[Literal["email", "sms", "in_app", "webhook"]] | None = None
    payment_method: str | None = Field(default=None, max_length=200)


@router.post("/customers", status_code=201, dependencies=[ADMIN], summary="Create a customer")
def create_customer(body: CustomerIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    data = body.model_dump(exclude_none=True)
    if "preferred_channels" in data:
        data["channels"] = data.pop("preferred_channels")
    with domain_errors(), ctx.db.session() as session:
        customer = sales.create_customer(session, data, clock=ctx.clock)
    ctx.after_commit()
    return customer


@router.get("/customers/{customer_id}", dependencies=[ADMIN],
            summary="A customer with their subscriptions and dunning state")
def get_customer(customer_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        customer = sales.get_customer(session, customer_id)
        customer["subscriptions"] = sales.list_subscriptions(session, customer_id)
        # What support asks first about a customer who cannot pay: where dunning stands.
        customer["dunning_state"] = ctx.read.dunning_state(session, customer_id)
    return customer


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"customer_id": "cus_42", "plan": "pro", "quantity": 3, "coupon": "WELCOME20",
                 "payment_method": {"type": "card", "token": "4242424242424242"}},
                {"customer_id": "cus_42", "plan": "basic", "payment_method": "pm_0123456789abcdef"},
            ]
        },
    )

    customer_id: CustomerId
    plan: PlanId
    quantity: SeatCount | None = None
    coupon: CouponCode | None = None
    payment_method: PaymentMethodIn | Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None,
        description="a method to attach (checked with the provider), a card token, or the id of a stored "
        "one (pm_...); it becomes the default, before the first invoice is collected",
    )
    trial_days: Annotated[int, Field(ge=0, le=3660), JSON_INTEGER] | None = Field(
        default=None, description="0 to 3660 days of trial"
    )


def _settled(ctx: ApiContext, customer_id: str) -> None:
    ctx.access.invalidate(customer_id)
    ctx.after_commit()


@router.post("/subscriptions", status_code=201, dependencies=[ADMIN], summary="Subscribe a customer to a plan")
def create_subscription(body: SubscriptionIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        # Stored in this transaction, before the first invoice's collection reads it.
        method_id = _subscription_method(session, ctx, body)
        sub = sales.create_subscription(
            session,
            body.customer_id,
            body.plan,
            clock=ctx.clock,
            quantity=body.quantity,
            coupon=body.coupon,
            payment_method=method_id,
            trial_days=body.trial_days,
            promotions=ctx.promotions,
        )
    _settled(ctx, body.customer_id)
    return sub


def _subscription_method(session: Any, ctx: ApiContext, body: SubscriptionIn) -> str | None:
    """The stored method the subscription pays with: attached now (a method or a bare card
    token) or found among the customer's (a pm_ id, made the default)."""
    given = body.payment_method
    if given is None:
        return None
    if isinstance(given, str) and given.startswith("pm_"):
        return use_stored_method(session, ctx, body.customer_id, given)
    with domain_errors("payment_method."):
        if isinstance(given, str):
            given = PaymentMethodIn(type="card", token=given)
        try:
            return str(attach(session, ctx, body.customer_id, given).id)
        except sales.NotFound as exc:  # the customer: a field of the body, not of the method
            raise Problem(404, exc.message, exc.field) from None


class ChangeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"plan": "enterprise"}, {"quantity": 5}],
            # A plan or a quantity, given (null is "not given").
            "anyOf": [
                {"required": ["plan"], "properties": {"plan": {"type": "string"}}},
                {"required": ["quantity"], "properties": {"quantity": {"not": {"type": "null"}}}},
            ],
        },
    )
    plan: PlanId | None = None
    quantity: SeatCount | None = None
    at: Literal["now", "period_end"] | None = Field(
        default=None, description="when it takes effect; default: an upgrade now, a downgrade at the period end"
    )


@router.post(
    "/subscriptions/{subscription_id}/change",
    dependencies=[ADMIN],
    summary="Upgrade now (prorated), downgrade at period end, or change the quantity",
)
def change_subscription(subscription_id: str, body: ChangeIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    if body.plan is None and body.quantity is None:
        raise Problem(422, "give a plan, a quantity or both", "plan")
    with domain_errors(), ctx.db.session() as session:
        sub = sales.change_subscription(
            session, subscription_id, clock=ctx.clock, plan=body.plan, quantity=body.quantity, at=body.at,
            promotions=ctx.promotions,
        )
    _settled(ctx, sub["customer_id"])
    return sub


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: Literal["now", "period_end"] = "period_end"


@router.post("/subscriptions/{subscription_id}/cancel", dependencies=[ADMIN], summary="Cancel now or at period end")
def cancel_subscription(subscription_id: str, body: CancelIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        sub = sales.cancel_subscription(session, subscription_id, clock=ctx.clock, at=body.at,
                                        promotions=ctx.promotions)
    _settled(ctx, sub["customer_id"])
    return sub


def _lifecycle(operation: Callable[..., dict[str, Any]], subscription_id: str, ctx: ApiContext) -> dict[str, Any]:
    """Reactivate, pause, resume: the same call shape, settled for the customer after."""
    with domain_errors(), ctx.db.session() as session:
        sub = operation(session, subscription_id, clock=ctx.clock, promotions=ctx.promotions)
    _settled(ctx, sub["customer_id"])
    return sub


@router.post(
    "/subscriptions/{subscription_id}/reactivate", dependencies=[ADMIN], summary="Undo a cancellation at period end"
)
def reactivate_subscription(subscription_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return _lifecycle(sales.reactivate_subscription, subscription_id, ctx)


@router.post(
    "/subscriptions/{subscription_id}/pause", dependencies=[ADMIN],
    summary="Pause at the end of the period paid for: no invoice while paused, the plan grants nothing",
)
def pause_subscription(subscription_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return _lifecycle(sales.pause_subscription, subscription_id, ctx)


@router.post(
    "/subscriptions/{subscription_id}/resume", dependencies=[ADMIN],
    summary="Resume a paused subscription (a new period from today, invoiced now) or withdraw a pause not in effect",
)
def resume_subscription(subscription_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return _lifecycle(sales.resume_subscription, subscription_id, ctx)


class CouponIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"coupon": "WINBACK30"}]})
    coupon: str = Field(min_length=1, max_length=100, description="a coupon of the subscription's catalog")


@router.post(
    "/subscriptions/{subscription_id}/coupon", dependencies=[ADMIN], summary="Apply a coupon from the next period on"
)
def apply_coupon(subscription_id: str, body: CouponIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        sub = sales.apply_coupon(session, subscription_id, body.coupon, clock=ctx.clock, promotions=ctx.promotions)
    _settled(ctx, sub["customer_id"])
    return sub


@router.get("/customers/{customer_id}/invoices", dependencies=[ADMIN], summary="A customer's invoices, paged")
def list_invoices(
    customer_id: str,
    page: int = Query(1, ge=1, le=1_000_000),
    per_page: int = Query(50, ge=1, le=500),
    ctx: ApiContext = Depends(context),
) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        return sales.list_invoices(session, customer_id, page=page, per_page=per_page)


@router.get("/invoices/{invoice_id}", dependencies=[ADMIN], summary="An invoice: lines, status, total, payments")
def get_invoice(invoice_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        invoice = sales.get_invoice(session, invoice_id)
        return {**invoice, **invoice_payments(session, invoice_id)}


MAX_ADVANCE = timedelta(days=3 * 366)
# `by` at most MAX_ADVANCE in each unit (36 months or 3 years are at most 1,096 days), so
# that the schema says which durations are taken.
_MOST_BY_UNIT = {"m": MAX_ADVANCE.days * 1440, "h": MAX_ADVANCE.days * 24, "d": MAX_ADVANCE.days,
                 "w": MAX_ADVANCE.days // 7, "mo": 36, "y": 3}
ADVANCE_BY_PATTERN = "^(" + "|".join(f"({up_to(most)}){unit}" for unit, most in _MOST_BY_UNIT.items()) + ")$"
ADVANCE_BY_TEXT = "a duration such as 3d, 2w or 1mo, at most " + ", ".join(
    f"{most}{unit}" for unit, most in _MOST_BY_UNIT.items())
_ADVANCE_LOCK = threading.Lock()


class AdvanceIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"by": "1mo"}, {"to": "2027-01-01T00:00:00Z"}],
            # One of them, given (null is "not given").
            "oneOf": [
                {"required": ["to"], "properties": {"to": {"type": "string"}}},
                {"required": ["by"], "properties": {"by": {"type": "string"}}},
            ],
        },
    )
    to: ZonedTime | None = Field(
        default=None, description=f"a time from now to {MAX_ADVANCE.days} days ahead of the clock (else a 409)"
    )
    by: Annotated[str, Matches(ADVANCE_BY_PATTERN, ADVANCE_BY_TEXT)] | None = Field(
        default=None,
        description=ADVANCE_BY_TEXT,
    )


@router.post(
    "/clock/advance",
    dependencies=[ADMIN],
    responses=documented(503),
    summary="Move the test clock, running every piece of work that falls due on the way",
)
def advance_clock(body: AdvanceIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    if ctx.test_clock is None or ctx.advance_to is None:
        raise Problem(409, "the engine is not running on a test clock (start it with --test-clock)", "clock")
    if (body.to is None) == (body.by is None):
        raise Problem(422, "give either to (a time) or by (a duration such as 3d or 1mo)", "to")
    now = ctx.test_clock.now()
    if body.to is not None:
        target, field_name = body.to, "to"
    else:
        # The pattern bounds `by` to MAX_ADVANCE: parsed, it cannot fail or go too far.
        target, field_name = parse_duration(str(body.by)).after(now), "by"
    # Where the clock stands is state: a time behind it, or too far ahead of it for one
    # call (each step bills every subscription due), clashes with it.
    if target < now:
        raise Problem(409, f"the clock is at {now.isoformat()} and cannot go back", field_name)
    if target > now + MAX_ADVANCE:
        raise Problem(409, f"the clock is at {now.isoformat()}: advance at most {MAX_ADVANCE.days} days per call",
                      field_name)
    # One advance at a time: the clock only moves forward.
    with _ADVANCE_LOCK, domain_errors():
        try:
            report = ctx.advance_to(target)
        except ValueError as exc:  # another advance moved the clock past the target meanwhile
            raise Problem(409, str(exc), field_name) from None
        except NotSettled as exc:  # the workers did not apply the events in time: say so
            raise Problem(503, f"the clock moved, but the work due did not finish: {exc}", "clock") from None
    ctx.access.invalidate(None)
    ctx.after_commit()
    return {"now": ctx.test_clock.now().isoformat(), **report}
