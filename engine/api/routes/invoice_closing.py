"""What an operator does to an issued invoice over HTTP: credit it, refund it through the
provider, void it, write it off. Each call checks everything before it writes, and writes the
invoice (sales), the receivable and journal (payments) and their events in one transaction (a
refund the provider refuses rolls the credit note back): the one door module left importing
two subsystems for that reason (docs/architecture.md, "What remains")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from engine import payments, sales
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.errors import domain_errors
from engine.api.problems import Problem, documented
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
