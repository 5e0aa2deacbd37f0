"""Invoice references a bank transfer may name: an invoice's number (in free text) and the
Swiss QR reference built from it, kept when the invoice is finalised.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from engine.payments.models import (
    InvoiceReference,
)
from engine.payments.reads import ONE_BY_ONE, Reads
from engine.payments.references import number_key, qr_reference

WORD = re.compile(r"[0-9A-Za-z][0-9A-Za-z/_.-]*[0-9A-Za-z]")


def bank_references(number: str | None) -> dict[str, str]:
    """The references (pay_invoice_references keys, with their kind) an invoice's number gives."""
    if not number:
        return {}
    wanted = {f"number:{number_key(number)}": "number"}
    qrr = qr_reference(number)
    if qrr:
        wanted[f"qrr:{qrr}"] = "qrr"
    return wanted


def remember_invoice(session: Session, invoice_id: str, number: str | None, reads: Reads = ONE_BY_ONE) -> None:
    """Keep what a bank transfer may name the invoice by: its number (in free text) and the QR
    reference built from it. Idempotent."""
    wanted = bank_references(number)
    if not wanted:
        return
    have = reads.bank_references(session, wanted)
    for ref, kind in wanted.items():
        if ref not in have:
            session.add(InvoiceReference(reference=ref, invoice_id=invoice_id, kind=kind))
    reads.added_bank_references(wanted)
    reads.write_now(session)


def number_candidates(text: str | None) -> list[str]:
    if not text:
        return []
    return [f"number:{k}" for k in (number_key(w) for w in WORD.findall(text))
            if sum(ch.isdigit() for ch in k) >= 3]
