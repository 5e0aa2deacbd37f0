"""Payment methods of a customer over HTTP, payments' alone (the customer checked through
`ctx.read.customer`). What an operator does to an issued invoice, which changes sales and
payments together, is routes/invoice_closing.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy.orm import Session

from engine import payments
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.errors import domain_errors
from engine.api.problems import documented
from engine.api.types import JsonBool

# Money arrives as a decimal string ("10.00"), never a JSON number (a float is not exact).
MoneyString = Annotated[str, Field(pattern=r"^[0-9]{1,15}(\.[0-9]{1,4})?$", max_length=20)]

# Methods the engine records without a provider's token.
OFFLINE_TYPES = ("bank_transfer", "manual")

router = APIRouter(prefix="/v1", tags=["payments"], responses=documented(400, 401, 403, 404, 409, 413, 422))


def service_of(ctx: ApiContext) -> payments.PaymentService:
    """The system's payment service; without a provider, one that only knows offline methods
    (bank transfer, manual) on the system's clock."""
    return ctx.payments.service_or_offline(ctx.clock)


class PaymentMethodIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "card", "token": "4242424242424242", "default": True},
                {"type": "bank_transfer", "provider": "bank"},
            ],
            # What the validator below says: a token, unless the method is offline.
            "anyOf": [
                {"required": ["type"], "properties": {"type": {"enum": list(OFFLINE_TYPES)}}},
                {"required": ["token"], "properties": {"token": {"type": "string", "minLength": 1}}},
            ],
        },
    )

    type: Literal["card", "paypal", "twint", "bank_transfer", "manual"] = "card"
    token: str | None = Field(
        default=None, max_length=200, validate_default=True,
        description="the provider's token (sandbox: a test card number); required but for bank_transfer and manual",
    )
    provider: str | None = Field(
        default=None, max_length=32,
        description="default: the system's provider (bank for a transfer); one this engine is configured with",
    )
    default: JsonBool = True

    @field_validator("token")
    @classmethod
    def _token_unless_offline(cls, token: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type", "card")
        if kind not in OFFLINE_TYPES and not token:
            raise ValueError(f"a {kind} needs the provider's token")
        return token


def attach(session: Session, ctx: ApiContext, customer_id: str, body: PaymentMethodIn) -> Any:
    """The customer must exist; the provider checks the method before anything is written."""
    ctx.read.customer(session, customer_id)
    return payments.attach_payment_method(
        session, customer_id, body.type, body.token, provider=body.provider, default=body.default,
        service=service_of(ctx),
    )


def use_stored_method(session: Session, ctx: ApiContext, customer_id: str, method_id: str) -> str:
    """A stored method of the customer's (a pm_ id) made the default; its id."""
    ctx.read.customer(session, customer_id)
    method = payments.find_payment_method(session, customer_id, method_id)
    payments.make_default(session, method)
    return method.id


def invoice_payments(session: Session, invoice_id: str) -> dict[str, Any]:
    """What payments knows of an invoice: the refunds of its payments, and each attempt at the
    provider (`collection`)."""
    return {"refunds": payments.invoice_refunds(session, invoice_id),
            "collection": payments.invoice_payment_summary(session, invoice_id)}


@router.post(
    "/customers/{customer_id}/payment_methods",
    status_code=201,
    dependencies=[ADMIN],
    summary="Attach a payment method (checked with the provider); open invoices are collected again",
)
def attach_payment_method(customer_id: str, body: PaymentMethodIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        method = payments.method_to_dict(attach(session, ctx, customer_id, body))
    # The method is stored whatever the charges below answer; a hard decline was waiting for it.
    if ctx.payments.service is not None:
        with domain_errors(), ctx.db.session() as session:
            payments.collect_open_invoices(session, customer_id, service=ctx.payments.service)
    ctx.access.invalidate(customer_id)
    ctx.after_commit()
    return method


@router.get("/customers/{customer_id}/payment_methods", dependencies=[ADMIN], summary="A customer's payment methods")
def list_payment_methods(customer_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        ctx.read.customer(session, customer_id)
        return {"items": payments.list_payment_methods(session, customer_id)}


@router.delete(
    "/customers/{customer_id}/payment_methods/{payment_method_id}",
    status_code=204,
    dependencies=[ADMIN],
    summary="Detach a payment method (the newest remaining one becomes the default)",
)
def detach_payment_method(customer_id: str, payment_method_id: str, ctx: ApiContext = Depends(context)) -> Response:
    with domain_errors(), ctx.db.session() as session:
        ctx.read.customer(session, customer_id)
        payments.detach_payment_method(session, customer_id, payment_method_id, service=service_of(ctx))
    ctx.after_commit()
    return Response(status_code=204)
