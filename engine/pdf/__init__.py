"""PDF invoices and credit notes, drawn with fpdf2 (no browser, no external service).

    pdf = invoice_pdf(session, "in_...", Seller.from_settings(settings), payment_instructions)  # -> Document
    pdf.data  # bytes;  pdf.filename  # "invoice-INV-2026-000001.pdf"

The figures are the invoice's own (`sales.get_invoice`, as `GET /v1/invoices/{id}` returns
them): nothing is priced again. How to pay comes from payments, through the `instructions`
reader the caller passes (engine.pdf.instructions.payment_instructions: the receivable's RF
reference for a customer who pays by transfer, the stored method's last four digits
otherwise), so this module names sales alone; the email attachment that joins it to messaging
is engine/system/attachments.py. The
language is the customer's (`attributes.locale`, en or de; anything else is English), the
currency format the one messaging's `money` filter writes. See docs/customer-page.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from engine import sales
from engine.pdf.layout import LABELS, LANGUAGES, DocumentData, Instructions, Seller, buyer_lines, language_of, render

__all__ = [
    "LABELS",
    "LANGUAGES",
    "Document",
    "DocumentData",
    "Instructions",
    "InstructionsOf",
    "Seller",
    "buyer_lines",
    "credit_note_pdf",
    "invoice_pdf",
    "language_of",
    "render",
]

MEDIA_TYPE = "application/pdf"
# (session, invoice) -> how the customer pays it (engine.pdf.instructions.payment_instructions).
InstructionsOf = Callable[[Session, Mapping[str, Any]], Instructions]


@dataclass(frozen=True)
class Document:
    filename: str
    data: bytes
    customer_id: str
    media_type: str = MEDIA_TYPE


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def customer_language(customer: Mapping[str, Any]) -> str:
    attributes = customer.get("attributes") or {}
    return language_of(customer.get("locale") or (attributes.get("locale") if isinstance(attributes, Mapping) else None))


def invoice_pdf(session: Session, invoice_id: str, seller: Seller, instructions: InstructionsOf, *,
                language: str | None = None) -> Document:
    """The PDF of an invoice. sales.NotFound on invoice_id."""
    invoice = sales.get_invoice(session, invoice_id)
    customer = sales.get_customer(session, invoice["customer_id"])
    return _drawn("invoice", invoice, customer, seller, language, instructions(session, invoice))


def credit_note_pdf(session: Session, credit_note_id: str, seller: Seller, *, language: str | None = None) -> Document:
    """The PDF of a credit note. sales.NotFound on credit_note_id."""
    note = dict(sales.get_credit_note(session, credit_note_id))
    customer = sales.get_customer(session, note["customer_id"])
    if note.get("invoice_id"):
        note["invoice_number"] = sales.get_invoice(session, note["invoice_id"]).get("number")
    return _drawn("credit_note", note, customer, seller, language)


# The file name's word for each kind of document, by language (LANGUAGES).
_FILE_WORDS = {
    ("invoice", "en"): "invoice",
    ("invoice", "de"): "rechnung",
    ("credit_note", "en"): "credit-note",
    ("credit_note", "de"): "gutschrift",
}


def _drawn(kind: str, document: Mapping[str, Any], customer: Mapping[str, Any], seller: Seller,
           language: str | None, instructions: Instructions = Instructions("none")) -> Document:
    """The PDF of an invoice or a credit note, in `language` or else the customer's."""
    lang = language_of(language) if language else customer_language(customer)
    data = DocumentData(kind, document, customer, seller, lang, instructions)
    name = f"{_FILE_WORDS[kind, lang]}-{_safe(str(document['number'] or document['id']))}.pdf"
    return Document(name, render(data), str(document["customer_id"]))

