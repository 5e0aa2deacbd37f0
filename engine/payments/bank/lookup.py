"""What the database already knows of a file's lines, fetched in a few queries (one array
parameter per query on PostgreSQL): bank lines from earlier files, payments recorded before
bank lines were kept, the invoices the lines' references may name, and manual bank transfers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import String, Text, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from engine.payments.bank.refs import number_candidates
from engine.payments.models import (
    BankLine,
    InvoiceReference,
    Payment,
    Receivable,
)
from engine.payments.statements import StatementLine

CHUNK = 500


def in_chunks(session: Session, column: Any, values: Iterable[str], *conditions: Any) -> list[Any]:
    vals = sorted(set(values))
    out: list[Any] = []
    for i in range(0, len(vals), CHUNK):
        out.extend(session.scalars(select(column.class_).where(column.in_(vals[i:i + CHUNK]), *conditions)))
    return out


@dataclass(slots=True)
class Rec:
    """A receivable as matching reads it (plain columns, not an ORM object: a statement may
    name 100,000 of them)."""

    invoice_id: str
    customer_id: str
    currency: str
    amount_due: Decimal
    amount_paid: Decimal
    credit_applied: Decimal
    payment_reference: str
    status: str

    @property
    def remaining(self) -> Decimal:
        return self.amount_due - self.amount_paid - self.credit_applied


REC_COLUMNS = (Receivable.invoice_id, Receivable.customer_id, Receivable.currency, Receivable.amount_due,
                Receivable.amount_paid, Receivable.credit_applied, Receivable.payment_reference,
                Receivable.status)


# Joins the values of one text parameter: a control character that no XML 1.0 text, and so no
# value read from a bank file, can hold.
_SEP = "\x1f"


def rows_where(session: Session, columns: Sequence[Any], column: Any, values: Iterable[str],
               *conditions: Any) -> list[Any]:
    """Core rows whose `column` is one of `values`: on PostgreSQL one text parameter split by
    the database (string_to_array: the driver's per-element array adaptation cost 0.2 s per
    100,000 values), or one array parameter when a value holds the separator; chunks of IN
    lists elsewhere."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        unique = set(values)
        if not unique:
            return []
        joined = _SEP.join(unique)
        if joined and joined.count(_SEP) == len(unique) - 1:
            split = func.string_to_array(bindparam("vals", type_=Text), _SEP)
            stmt = select(*columns).where(column == any_(split), *conditions)
            return list(conn.execute(stmt, {"vals": joined}).all())
        stmt = select(*columns).where(column == any_(bindparam("vals", type_=ARRAY(String))), *conditions)
        return list(conn.execute(stmt, {"vals": list(unique)}).all())
    vals = sorted(set(values))
    out: list[Any] = []
    for i in range(0, len(vals), CHUNK):
        out.extend(conn.execute(select(*columns).where(column.in_(vals[i:i + CHUNK]), *conditions)).all())
    return out


@dataclass
class Known:
    """What the database already knows of a file's lines, fetched in a few queries: bank
    lines from earlier files, payments recorded before bank lines were kept, the invoices
    their references may name, and manual bank-transfer payments under those references."""

    existing: dict[str, BankLine]
    legacy: dict[str, Payment]
    receivables: dict[str, Rec]
    manual: dict[str, list[Payment]]
    by_key: dict[str, str]
    by_invoice: dict[str, Rec]

    def resolve(self, line: StatementLine) -> tuple[Rec | None, str]:
        """The invoice a credit line pays, and how it was recognised."""
        rec = self.receivables.get(line.payment_reference or "")
        if rec is not None:
            return rec, "RF reference"
        if line.ref_kind in ("qrr", "isr"):
            rec = self.by_invoice.get(self.by_key.get(f"qrr:{line.payment_reference}", ""))
            if rec is not None:
                return rec, "QR reference"
        for key in number_candidates(line.text):
            rec = self.by_invoice.get(self.by_key.get(key, ""))
            if rec is not None:
                return rec, "invoice number in the text"
        return None, ""


def known_of(session: Session, account: str, lines: Sequence[StatementLine]) -> Known:
    existing, legacy = _seen_lines(session, account, lines)
    rf_refs = {ln.payment_reference for ln in lines if ln.ref_kind == "rf" and ln.payment_reference}
    receivables = {r[6]: Rec(*r) for r in rows_where(session, REC_COLUMNS, Receivable.payment_reference, rf_refs)}
    by_key = {r[0]: r[1] for r in rows_where(session, (InvoiceReference.reference, InvoiceReference.invoice_id),
                                              InvoiceReference.reference, _other_keys(lines, receivables))}
    by_invoice = {r[0]: Rec(*r) for r in rows_where(session, REC_COLUMNS, Receivable.invoice_id, by_key.values())}
    return Known(existing, legacy, receivables, _manual_transfers(session, rf_refs), by_key, by_invoice)


def _seen_lines(session: Session, account: str,
                lines: Sequence[StatementLine]) -> tuple[dict[str, BankLine], dict[str, Payment]]:
    """The lines' bank lines from earlier files (by identity), and the payments imports
    recorded before bank lines were kept (by idempotency key)."""
    known_ids = {r[0]: r[1] for r in rows_where(session, (BankLine.identity, BankLine.id), BankLine.identity,
                                                 (ln.provider_ref or "" for ln in lines), BankLine.account == account)}
    existing = {b.identity: b for b in in_chunks(session, BankLine.id, known_ids.values())}
    legacy_keys = [f"bank:{account}:{ln.provider_ref}" for ln in lines]
    legacy_ids = [r[0] for r in rows_where(session, (Payment.id,), Payment.idempotency_key, legacy_keys)]
    return existing, {p.idempotency_key: p for p in in_chunks(session, Payment.id, legacy_ids)}


def _manual_transfers(session: Session, refs: set[str]) -> dict[str, list[Payment]]:
    """Bank transfers an admin recorded under these references, oldest first."""
    ids = [r[0] for r in rows_where(session, (Payment.id,), Payment.payment_reference, refs,
                                     Payment.provider == "manual")]
    transfers = [p for p in in_chunks(session, Payment.id, ids)
                 if p.method_type == "bank_transfer" and p.status in ("succeeded", "refunded")]
    manual: dict[str, list[Payment]] = {}
    for p in sorted(transfers, key=lambda p: p.created_at):
        manual.setdefault(p.payment_reference or "", []).append(p)
    return manual


def _other_keys(lines: Sequence[StatementLine], receivables: dict[str, Rec]) -> set[str]:
    """The QR references and invoice numbers of the credits no RF reference resolves (the
    receivables' references are never empty, so an empty one is never among them)."""
    keys: set[str] = set()
    for ln in lines:
        if ln.kind != "credit" or ln.payment_reference in receivables:
            continue
        if ln.ref_kind in ("qrr", "isr") and ln.payment_reference:
            keys.add(f"qrr:{ln.payment_reference}")
        keys.update(number_candidates(ln.text))
    return keys
