"""How to pay, as an invoice PDF says it, read from payments: the receivable's RF reference for
a customer who pays by transfer, the stored method's last four digits otherwise (what the
invoice email says too, engine.automation.templating). engine.system hands it to the PDF
functions (`invoice_pdf(..., instructions)`), so engine.pdf itself names sales alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from engine import payments
from engine.pdf.layout import Instructions


def payment_instructions(session: Session, invoice: Mapping[str, Any]) -> Instructions:
    """Transfer (with the RF reference) for a customer without a method a provider charges,
    the method otherwise."""
    summary = payments.invoice_payment_summary(session, str(invoice["id"]))
    reference = str((summary or {}).get("payment_reference") or payments.invoice_reference(str(invoice["id"])))
    method = payments.default_payment_method(session, str(invoice["customer_id"]))
    if method is None or method.provider == "bank" or method.method_type in ("bank_transfer", "manual"):
        return Instructions("transfer", reference=reference)
    described = payments.method_to_dict(method)
    label = f"{method.method_type} ending {described['last4']}" if described.get("last4") else method.method_type
    return Instructions("method", reference=reference, method=label)
