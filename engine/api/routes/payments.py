"""Payment methods of a customer, and what an operator does to an issued invoice: credit it,
refund it through the provider, void it, write it off. Each call checks everything before it
writes, and writes the invoice (sales), the receivable and journal (payments) and their events
in one transaction."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy.orm import Session

from engine import payments, sales
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.errors import domain_errors
from engine.api.problems import Problem, documented
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
    sales.get_customer(session, customer_id)
    return payments.attach_payment_method(
        session, customer_id, body.type, body.token, provider=body.provider, default=body.default,
        service=service_of(ctx),
    )


def use_stored_method(session: Session, customer_id: str, method_id: str) -> str:
    """A stored method of the customer's (a pm_ id) made the default; its id."""
    sales.get_customer(session, customer_id)
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
        sales.get_customer(session, customer_id)
        return {"items": payments.list_payment_methods(session, customer_id)}


@router.delete(
    "/customers/{customer_id}/payment_methods/{payment_method_id}",
    status_code=204,
    dependencies=[ADMIN],
    summary="Detach a payment method (the newest remaining one becomes the default)",
)
def detach_payment_method(customer_id: str, payment_method_id: str, ctx: ApiContext = Depends(context)) -> Response:
    with domain_errors(), ctx.db.session() as session:
        sales.get_customer(session, customer_id)
        payments.detach_payment_method(session, customer_id, payment_method_id, service=service_of(ctx))
    ctx.after_commit()
    return Response(status_code=204)


# --- invoices ---------------------------------------------------------------------------------


class CreditNoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"amount": "10.00", "reason": "goodwill"}]})
    amount: MoneyString | None = Field(default=None, description="default: all that is left to credit", examples=["10.00"])
    reason: str = Field(default="", max_length=200)


@router.post(
    "/invoices/{invoice_id}/credit_notes",
    status_code=201,
    dependencies=[ADMIN],
    summary="Credit (part of) an issued invoice: applied to what is still due, the rest to the customer's balance",
)
def credit_invoice(invoice_id: str, body: CreditNoteIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        note = sales.credit_invoice(session, invoice_id, _amount(body.amount), clock=ctx.clock, reason=body.reason)
        currency = note["currency"]
        payments.credit_receivable(
            session, invoice_id, Decimal(note["applied_to_invoice"]), Decimal(note["credited_to_balance"]),
            note["id"], service=service_of(ctx),
        )
    ctx.after_commit()
    return {**note, "currency": currency}


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"amount": "10.00", "reason": "duplicate"}]})
    amount: MoneyString | None = Field(default=None, description="default: all that was paid and not refunded", examples=["10.00"])
    reason: str = Field(default="", max_length=200)


@router.post(
    "/invoices/{invoice_id}/refunds",
    status_code=201,
    dependencies=[ADMIN],
    summary="Refund (part of) a paid invoice through the provider, with a credit note",
)
def refund_invoice(invoice_id: str, body: RefundIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    service = ctx.payments.service
    if service is None:
        raise Problem(409, "this engine has no payment provider to refund through", "invoice_id")
    with domain_errors(), ctx.db.session() as session:
        invoice = sales.get_invoice(session, invoice_id)
        left, _ = payments.refundable(session, invoice_id)
        amount = left if body.amount is None else Decimal(body.amount)
        amount = payments.check_refund(session, invoice_id, amount, invoice["currency"])
        # The credit note first (sales checks the invoice is paid), the provider last: a
        # refusal there rolls the credit note back with everything else.
        note = sales.refund_invoice(session, invoice_id, amount, clock=ctx.clock, reason=body.reason or "refund")
        refunds = payments.refund_invoice_payments(session, invoice_id, amount, reason=body.reason,
                                                   service=service)
        out = {"refunds": [payments.refund_to_dict(r) for r in refunds], "credit_note": note,
               "amount": note["total"], "currency": note["currency"]}
        out["refund"] = out["refunds"][0] if len(refunds) == 1 else None
    ctx.after_commit()
    return out


@router.post("/invoices/{invoice_id}/void", dependencies=[ADMIN], summary="Void an open, unpaid invoice")
def void_invoice(invoice_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        _closable(session, invoice_id, "void")
        invoice = sales.void_invoice(session, invoice_id, clock=ctx.clock)
        payments.close_receivable(session, invoice_id, "void", service=service_of(ctx))
    ctx.access.invalidate(invoice["customer_id"])
    ctx.after_commit()
    return invoice


@router.post(
    "/invoices/{invoice_id}/mark_uncollectible",
    dependencies=[ADMIN],
    summary="Write off what an open invoice still owes (bad debt in the journal)",
)
def mark_uncollectible(invoice_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        invoice = sales.mark_uncollectible(session, invoice_id, clock=ctx.clock)
        payments.close_receivable(session, invoice_id, "uncollectible", service=service_of(ctx))
    ctx.access.invalidate(invoice["customer_id"])
    ctx.after_commit()
    return invoice


def _closable(session: Session, invoice_id: str, what: str) -> None:
    """Only an open invoice (finalized, nothing paid) is voided; sales says the rest."""
    invoice = sales.get_invoice(session, invoice_id)
    if invoice["status"] not in ("finalized", "uncollectible") or Decimal(invoice["amount_paid"]) > 0:
        raise Problem(409, f"invoice {invoice_id} is {invoice['status']}"
                      f"{' with payments' if Decimal(invoice['amount_paid']) > 0 else ''}; only an open, unpaid "
                      f"invoice can be {what}ed", "invoice_id")


def _amount(given: str | None) -> Decimal | None:
    return None if given is None else Decimal(given)
