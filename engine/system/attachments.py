"""Invoice emails carry their PDF: messaging's AttachmentSource drawn from engine.pdf, bound
here because it joins three subsystems (messaging's attachment, sales' documents, payments'
instructions)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from sqlalchemy.orm import Session

from engine import errors
from engine.messaging import Attachment
from engine.pdf import Document, Seller, credit_note_pdf, invoice_pdf
from engine.pdf.instructions import payment_instructions
from engine.store import Database


class PdfAttachments:
    """`{"kind": "invoice_pdf" | "credit_note_pdf", "id": ...}` drawn from the database when
    the email is sent."""

    def __init__(self, db: Database, seller: Seller) -> None:
        self.db = db
        self.seller = seller

    def __call__(self, ref: Mapping[str, str]) -> Attachment:
        kind, ident = ref.get("kind"), str(ref.get("id") or "")
        drawers: dict[str, Callable[[Session, str, Seller], Document]] = {
            "invoice_pdf": partial(invoice_pdf, instructions=payment_instructions),
            "credit_note_pdf": credit_note_pdf,
        }
        make = drawers.get(str(kind))
        if make is None:
            raise LookupError(f"unknown attachment kind {kind!r}")
        with self.db.read_session() as session:
            try:
                doc = make(session, ident, self.seller)
            except errors.NotFound as exc:
                raise LookupError(str(exc)) from exc
        return Attachment(doc.filename, doc.media_type, doc.data)
