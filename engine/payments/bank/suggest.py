"""Suggestions for an open credit line: open invoices of the same amount, due close to the
booking date, or with a similar reference, the most likely first.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.money import quantum
from engine.payments.bank.lookup import in_chunks
from engine.payments.bank.refs import WORD
from engine.payments.models import (
    BankLine,
    InvoiceReference,
    Receivable,
)
from engine.payments.references import number_key

SUGGESTION_DAYS = 10


def suggestions(session: Session, rows: Sequence[BankLine]) -> dict[str, list[dict[str, Any]]]:
    if not rows:
        return {}
    currencies = {r.currency for r in rows}
    open_recs = list(session.scalars(select(Receivable).where(
        Receivable.status == "open", Receivable.currency.in_(currencies))))
    numbers: dict[str, list[str]] = {}
    for ref in in_chunks(session, InvoiceReference.invoice_id, (r.invoice_id for r in open_recs)):
        if ref.kind == "number":
            numbers.setdefault(ref.invoice_id, []).append(ref.reference.split(":", 1)[1])
    return {row.id: _suggest(row, open_recs, numbers) for row in rows}


def _suggest(row: BankLine, open_recs: list[Receivable], numbers: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Up to five open invoices this line may pay, the most likely first, each with its reasons."""
    amount = abs(row.amount) + Decimal(row.details.get("charges_deducted", "0"))
    words = [w for w in (number_key(w) for w in WORD.findall(" ".join(filter(None, [row.reference, row.text]))))
             if len(w) >= 4]
    scored = []
    for rec in open_recs:
        if rec.currency != row.currency or rec.remaining <= 0:
            continue
        best = _similarity(words, [rec.payment_reference, *numbers.get(rec.invoice_id, [])])
        reasons = _reasons(row, rec, amount, best)
        if reasons:
            score = ("same amount" in reasons) * 2 + (best >= 0.7) * 2 + (len(reasons) - 0.0)
            scored.append((-score, rec.invoice_id, rec, reasons))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [
        {"invoice_id": rec.invoice_id, "customer_id": rec.customer_id,
         "amount_due": str(rec.remaining.quantize(quantum(rec.currency))), "currency": rec.currency,
         "payment_reference": rec.payment_reference, "numbers": numbers.get(rec.invoice_id, []),
         "reasons": reasons}
        for _s, _i, rec, reasons in scored[:5]
    ]


def _similarity(words: list[str], targets: list[str]) -> float:
    """The best ratio of a word to a target, counting only pairs at least 70% alike."""
    best = 0.0
    for target in targets:
        for w in words:
            m = difflib.SequenceMatcher(None, w, target)
            if m.real_quick_ratio() >= 0.7 and m.quick_ratio() >= 0.7:
                best = max(best, m.ratio())
    return best


def _reasons(row: BankLine, rec: Receivable, amount: Decimal, best: float) -> list[str]:
    reasons = []
    if rec.remaining == amount:
        reasons.append("same amount")
    due = _due_reason(row.booked_on, rec.due_at or rec.created_at)
    if due:
        reasons.append(due)
    if best >= 0.7:
        reasons.append(f"similar reference ({best:.0%})")
    return reasons


def _due_reason(booked_on: datetime | None, due: datetime | None) -> str | None:
    """How far the invoice's due date lies from the booking, when within SUGGESTION_DAYS."""
    if booked_on is None or due is None:
        return None
    days = (booked_on.date() - due.date()).days
    if abs(days) > SUGGESTION_DAYS:
        return None
    if not days:
        return "due on the booking day"
    return f"due {abs(days)} day{'s' if abs(days) != 1 else ''} {'before' if days > 0 else 'after'} the booking"
