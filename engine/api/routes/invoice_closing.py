"""What an operator does to an issued invoice over HTTP: credit it, refund it through the
provider, void it, write it off. Each call is one transaction over the operation in
engine/system/operations/invoice_closing.py (`ctx.operations`, bound in
engine/system/api_operations.py), which writes the invoice (sales) and the receivable and
journal (payments): a refusal, or a refund the provider refuses, writes nothing. This module
imports no subsystem."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.errors import domain_errors
from engine.api.problems import Problem, documented
from engine.api.routes.operators import refused
from engine.api.routes.payments import MoneyString, service_of

# The payments router's tag and documented answers: these routes were its own.
router = APIRouter(prefix="/v1", tags=["payments"], responses=documented(400, 401, 403, 404, 409, 413, 422))


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
        note = ctx.operations.credit_invoice(session, invoice_id, _amount(body.amount), body.reason, clock=ctx.clock,
                                      service=service_of(ctx))
    ctx.after_commit()
    return note


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
        out = ctx.operations.refund_invoice(session, invoice_id, _amount(body.amount), body.reason, clock=ctx.clock,
                                     service=service)
    ctx.after_commit()
    return out


@router.post("/invoices/{invoice_id}/void", dependencies=[ADMIN], summary="Void an open, unpaid invoice")
def void_invoice(invoice_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), refused(), ctx.db.session() as session:
        invoice = ctx.operations.void_invoice(session, invoice_id, clock=ctx.clock, service=service_of(ctx))
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
        invoice = ctx.operations.mark_uncollectible(session, invoice_id, clock=ctx.clock, service=service_of(ctx))
    ctx.access.invalidate(invoice["customer_id"])
    ctx.after_commit()
    return invoice


def _amount(given: str | None) -> Decimal | None:
    return None if given is None else Decimal(given)
