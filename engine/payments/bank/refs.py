"""Invoice references a bank transfer may name: an invoice's number (in free text) and the
Swiss QR reference built from it, kept when the invoice is finalised.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.payments.models import (
    InvoiceReference,
)
from engine.payments.references import number_key, qr_reference

WORD = re.compile(r"[0-9A-Za-z][0-9A-Za-z/_.-]*[0-9A-Za-z]")


def remember_invoice(session: Session, invoice_id: str, number: str | None) -> None:
    """Keep what a bank transfer may name the invoice by: its number (in free text) and the QR
    reference built from it. Idempotent."""
    if not number:
        return
    wanted = {f"number:{number_key(number)}": "number"}
    qrr = qr_reference(number)
    if qrr:
        wanted[f"qrr:{qrr}"] = "qrr"
    have = set(session.scalars(select(InvoiceReference.reference).where(InvoiceReference.reference.in_(wanted))))
    for ref, kind in wanted.items():
        if ref not in have:
            session.add(InvoiceReference(reference=ref, invoice_id=invoice_id, kind=kind))
    session.flush()


def number_candidates(text: str | None) -> list[str]:
    if not text:
        return []
    return [f"number:{k}" for k in (number_key(w) for w in WORD.findall(text))
            if sum(ch.isdigit() for ch in k) >= 3]
