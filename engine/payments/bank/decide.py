"""An operator's decision on an open bank line: confirm, split or dismiss, recorded with who
and why (`ReconciliationDecision`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine.money import quantum
from engine.payments.bank.apply import apply_transfer
from engine.payments.bank.lines import decision_to_dict, line_to_dict
from engine.payments.models import (
    BankLine,
    Receivable,
    ReconciliationDecision,
)
from engine.payments.service import PaymentError, PaymentNotFound, PaymentService
from engine.store import new_event_id

ZERO = Decimal(0)
class DecisionConflict(PaymentError):
    """The line is not open (already matched or decided): HTTP 409."""


def _open_line(session: Session, line_id: str, reason: str, actor: str) -> BankLine:
    """The line, locked, once it is open and the decision says why and who."""
    row = session.get(BankLine, line_id, with_for_update=True)
    if row is None:
        raise PaymentNotFound(f"no bank line {line_id!r}", "line_id")
    if row.status != "open":
        raise DecisionConflict(f"bank line {line_id} is {row.status}; only an open line is decided", "line_id")
    if not reason or not reason.strip():
        raise PaymentError("say why: a decision is recorded with its reason", "reason")
    if not actor:
        raise PaymentError("a decision needs who made it", "actor")
    return row


def _allocation_plan(session: Session, row: BankLine, action: str,
                     allocations: Sequence[tuple[str, Decimal | None]], total: Decimal) -> list[tuple[Receivable, Decimal]]:
    """(invoice, amount) for each allocation of a confirm or split, which add up to `total`
    (the line with the bank's charges); errors name the request's field."""
    if row.kind != "credit" or row.amount <= 0:
        raise PaymentError(f"bank line {row.id} is a {row.kind}; only a credit pays invoices", "line_id")
    if action == "confirm" and len(allocations) != 1:
        raise PaymentError("confirm names exactly one invoice", "invoice_id")
    if action == "split" and len(allocations) < 2:
        raise PaymentError("a split names two invoices or more", "allocations")
    plan = [_planned_part(session, row, action, i, invoice_id, amount, total)
            for i, (invoice_id, amount) in enumerate(allocations)]
    parts = sum((a for _r, a in plan), ZERO)
    if parts != total:
        raise PaymentError(f"the parts add up to {parts}, the transfer is {total.quantize(quantum(row.currency))}",
                           "amount" if action == "confirm" else "allocations")
    return plan


def _planned_part(session: Session, row: BankLine, action: str, i: int, invoice_id: str, amount: Decimal | None,
                  total: Decimal) -> tuple[Receivable, Decimal]:
    confirm = action == "confirm"
    # the request's fields: a confirm's own, or those of the split's i-th allocation
    invoice_field, amount_field = ("invoice_id", "amount") if confirm else (
        f"allocations[{i}].invoice_id", f"allocations[{i}].amount")
    rec = session.get(Receivable, invoice_id)
    if rec is None:
        raise PaymentNotFound(f"no invoice {invoice_id!r} to apply the transfer to", invoice_field)
    if rec.currency != row.currency:
        raise PaymentError(f"invoice {invoice_id} is in {rec.currency}, the transfer in {row.currency}",
                           invoice_field)
    if amount is None:
        if not confirm:
            raise PaymentError("each part of a split says its amount", amount_field)
        amount = total
    if amount <= 0 or amount != amount.quantize(quantum(row.currency)):
        raise PaymentError(f"{amount} is not a positive {row.currency} amount", amount_field)
    return rec, amount


def decide(session: Session, line_id: str, *, action: str, allocations: Sequence[tuple[str, Decimal | None]] = (),
           reason: str, actor: str, service: PaymentService) -> dict[str, Any]:
    """A person's decision on an open line: `confirm` (one invoice; the amount defaults to the
    whole line), `split` (two or more invoices whose amounts add up to the line), or `dismiss`
    (nothing is applied). Checked whole before anything is written; recorded with `actor` and
    `reason`."""
    svc = service
    row = _open_line(session, line_id, reason, actor)
    charges = Decimal(row.details.get("charges_deducted", "0"))
    total = row.amount + charges
    plan: list[tuple[Receivable, Decimal]] = []
    if action in ("confirm", "split"):
        plan = _allocation_plan(session, row, action, allocations, total)
    elif action != "dismiss":
        raise PaymentError(f"action must be confirm, split or dismiss, not {action!r}", "action")
    decision_id = new_event_id("rd")
    done: list[dict[str, Any]] = []
    for i, (rec, amount) in enumerate(plan, start=1):
        share = charges if i == 1 else ZERO  # the bank's charges, journalled once
        payment = apply_transfer(session, svc, row.booked_on, row.reference, rec.invoice_id, amount, share,
                         f"bankline:{row.id}:{i}", f"{row.identity}/d{i}", actor, row.account)
        row.payment_ids = [*(row.payment_ids or []), payment.id]
        done.append({"invoice_id": rec.invoice_id, "amount": str(amount), "payment_id": payment.id})
    now = svc.now()
    row.status, row.updated_at = "resolved", now
    decision = ReconciliationDecision(id=decision_id, line_id=row.id, action=action, allocations=done,
                                      actor=actor[:120], reason=reason.strip()[:500], decided_at=now)
    session.add(decision)
    session.flush()
    out = line_to_dict(row)
    out["decision"] = decision_to_dict(decision)
    return out
