"""Bank files against invoices, line by line, and what a person does with the rest.

Every transaction line of a camt.053 / camt.054 file is kept as a `BankLine` (unique per bank
account and identity, so the same entry in a later file is found again, never applied twice).
A booked credit that names an invoice (RF reference, Swiss QR/ISR reference built from the
invoice number, or the invoice number in the free text) is recorded as that invoice's bank
transfer; everything else that needs a person stays `open`:

| line | treatment |
|---|---|
| credit naming an open invoice, same currency | applied (`matched`; a partial or over-payment is `amount_mismatch`, the excess to customer credit) |
| credit naming nothing known | `open`, `missing_in_ledger`, with suggestions |
| credit in another currency than the invoice (or sent in another currency) | `open`, `currency_mismatch`: not applied; the amount sent and the rate are shown |
| charges the bank deducted (`ChrgInclInd` true) | the invoice is credited with what the customer paid (amount + charges); the charges are journalled `Dr bank_charges / Cr cash:bank` |
| charges only reported | shown with the line, not journalled (the bank books them as their own debit) |
| reversal (`RvslInd` true), either way | `open`, `reversal`: nothing is applied or undone automatically |
| returned payment (`RtrInf`, or a return bank transaction code) | `open`, `returned`, with the reason code |
| other debits (our refunds, fees) | `skipped` |
| not booked (`PDNG`, `INFO`) | `pending`: processed when a later file books it |

An operator confirms an open credit to one invoice, splits it over several, or dismisses a
line (nothing to apply); every decision is recorded with who and why
(`ReconciliationDecision`).
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import String, any_, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from engine.money import quantum
from engine.payments import journal
from engine.payments.journal import Posting
from engine.payments.manual import record_manual_payment
from engine.payments.models import (
    BankLine,
    InvoiceReference,
    JournalLine,
    Payment,
    Receivable,
    ReconciliationDecision,
)
from engine.payments.reads import ONE_BY_ONE, Reads
from engine.payments.references import normalise_reference, number_key, qr_reference
from engine.payments.service import PaymentError, PaymentNotFound, PaymentService
from engine.payments.statements import ParsedStatement, StatementLine
from engine.store import OutboxEvent, new_event_id

ZERO = Decimal(0)
BANK_CHARGES = "bank_charges"
_CHUNK = 500
_WORD = re.compile(r"[0-9A-Za-z][0-9A-Za-z/_.-]*[0-9A-Za-z]")
SUGGESTION_DAYS = 10


class DecisionConflict(PaymentError):
    """The line is not open (already matched or decided): HTTP 409."""


# --- invoice references ------------------------------------------------------------------------


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
    session.flush()


def _in_chunks(session: Session, column: Any, values: Iterable[str], *conditions: Any) -> list[Any]:
    vals = sorted(set(values))
    out: list[Any] = []
    for i in range(0, len(vals), _CHUNK):
        out.extend(session.scalars(select(column.class_).where(column.in_(vals[i:i + _CHUNK]), *conditions)))
    return out


def _number_candidates(text: str | None) -> list[str]:
    if not text:
        return []
    return [f"number:{k}" for k in (number_key(w) for w in _WORD.findall(text))
            if sum(ch.isdigit() for ch in k) >= 3]


# --- matching ----------------------------------------------------------------------------------


def _result(import_id: str, line: StatementLine, status: str, *, payment: Payment | None = None,
            expected: Decimal | None = None, expected_currency: str | None = None,
            detail: str | None = None, customer: str | None = None) -> dict[str, Any]:
    payment_id, payer = (payment.id, payment.customer_id) if payment else (None, None)
    return {
        "import_id": import_id, "line_no": line.line_no, "status": status, "kind": line.kind,
        "provider_ref": line.provider_ref, "payment_reference": line.payment_reference,
        "payment_id": payment_id, "expected_amount": expected,
        "actual_amount": line.amount, "expected_currency": expected_currency,
        "actual_currency": line.currency, "fee": line.charges_deducted or None, "payout_id": None,
        "detail": detail[:300] if detail else None,
        "_customer": customer or payer,
    }


def _details(line: StatementLine) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if line.reversal:
        d["reversal"] = True
    if line.returned:
        d["returned"] = line.returned
    if line.charges_deducted:
        d["charges_deducted"] = str(line.charges_deducted)
    if line.charges_reported:
        d["charges_reported"] = str(line.charges_reported)
    if line.instructed:
        d["instructed_amount"] = str(line.instructed[0])
        d["instructed_currency"] = line.instructed[1]
    if line.fx_rate is not None:
        d["exchange_rate"] = str(line.fx_rate)
    if line.entry_ref and line.entry_ref != line.provider_ref:
        d["entry"] = line.entry_ref
    return d


def _day(line: StatementLine) -> datetime | None:
    return datetime.combine(line.booked_on, time(0), tzinfo=UTC) if line.booked_on else None


@dataclass(slots=True)
class _Rec:
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


_REC_COLUMNS = (Receivable.invoice_id, Receivable.customer_id, Receivable.currency, Receivable.amount_due,
                Receivable.amount_paid, Receivable.credit_applied, Receivable.payment_reference,
                Receivable.status)


def rows_where(session: Session, columns: Sequence[Any], column: Any, values: Iterable[str],
                *conditions: Any) -> list[Any]:
    """Core rows whose `column` is one of `values`: one array parameter on PostgreSQL, chunks
    of IN lists elsewhere."""
    vals = sorted(set(values))
    if not vals:
        return []
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        stmt = select(*columns).where(column == any_(bindparam("vals", type_=ARRAY(String))), *conditions)
        return list(conn.execute(stmt, {"vals": vals}).all())
    out: list[Any] = []
    for i in range(0, len(vals), _CHUNK):
        out.extend(conn.execute(select(*columns).where(column.in_(vals[i:i + _CHUNK]), *conditions)).all())
    return out


def _fast_ids(prefix: str, n: int) -> list[str]:
    """n distinct ids sharing one time-ordered stem (new_event_id per row costs a second at
    100,000 rows)."""
    stem = new_event_id(prefix)[:-6]
    return [f"{stem}{i:06x}" for i in range(n)]


@dataclass
class _Known:
    """What the database already knows of a file's lines, fetched in a few queries: bank
    lines from earlier files, payments recorded before bank lines were kept, the invoices
    their references may name, and manual bank-transfer payments under those references."""

    existing: dict[str, BankLine]
    legacy: dict[str, Payment]
    receivables: dict[str, _Rec]
    manual: dict[str, list[Payment]]
    by_key: dict[str, str]
    by_invoice: dict[str, _Rec]

    def resolve(self, line: StatementLine) -> tuple[_Rec | None, str]:
        """The invoice a credit line pays, and how it was recognised."""
        rec = self.receivables.get(line.payment_reference or "")
        if rec is not None:
            return rec, "RF reference"
        if line.ref_kind in ("qrr", "isr"):
            rec = self.by_invoice.get(self.by_key.get(f"qrr:{line.payment_reference}", ""))
            if rec is not None:
                return rec, "QR reference"
        for key in _number_candidates(line.text):
            rec = self.by_invoice.get(self.by_key.get(key, ""))
            if rec is not None:
                return rec, "invoice number in the text"
        return None, ""


def _known(session: Session, account: str, lines: Sequence[StatementLine]) -> _Known:
    existing, legacy = _seen_lines(session, account, lines)
    rf_refs = {ln.payment_reference for ln in lines if ln.ref_kind == "rf" and ln.payment_reference}
    receivables = {r[6]: _Rec(*r) for r in rows_where(session, _REC_COLUMNS, Receivable.payment_reference, rf_refs)}
    by_key = {r[0]: r[1] for r in rows_where(session, (InvoiceReference.reference, InvoiceReference.invoice_id),
                                              InvoiceReference.reference, _other_keys(lines, receivables))}
    by_invoice = {r[0]: _Rec(*r) for r in rows_where(session, _REC_COLUMNS, Receivable.invoice_id, by_key.values())}
    return _Known(existing, legacy, receivables, _manual_transfers(session, rf_refs), by_key, by_invoice)


def _seen_lines(session: Session, account: str,
                lines: Sequence[StatementLine]) -> tuple[dict[str, BankLine], dict[str, Payment]]:
    """The lines' bank lines from earlier files (by identity), and the payments imports
    recorded before bank lines were kept (by idempotency key)."""
    known_ids = {r[0]: r[1] for r in rows_where(session, (BankLine.identity, BankLine.id), BankLine.identity,
                                                 (ln.provider_ref or "" for ln in lines), BankLine.account == account)}
    existing = {b.identity: b for b in _in_chunks(session, BankLine.id, known_ids.values())}
    legacy_keys = [f"bank:{account}:{ln.provider_ref}" for ln in lines]
    legacy_ids = [r[0] for r in rows_where(session, (Payment.id,), Payment.idempotency_key, legacy_keys)]
    return existing, {p.idempotency_key: p for p in _in_chunks(session, Payment.id, legacy_ids)}


def _manual_transfers(session: Session, refs: set[str]) -> dict[str, list[Payment]]:
    """Bank transfers an admin recorded under these references, oldest first."""
    ids = [r[0] for r in rows_where(session, (Payment.id,), Payment.payment_reference, refs,
                                     Payment.provider == "manual")]
    transfers = [p for p in _in_chunks(session, Payment.id, ids)
                 if p.method_type == "bank_transfer" and p.status in ("succeeded", "refunded")]
    manual: dict[str, list[Payment]] = {}
    for p in sorted(transfers, key=lambda p: p.created_at):
        manual.setdefault(p.payment_reference or "", []).append(p)
    return manual


def _other_keys(lines: Sequence[StatementLine], receivables: dict[str, _Rec]) -> set[str]:
    """The QR references and invoice numbers of the credits no RF reference resolves (the
    receivables' references are never empty, so an empty one is never among them)."""
    keys: set[str] = set()
    for ln in lines:
        if ln.kind != "credit" or ln.payment_reference in receivables:
            continue
        if ln.ref_kind in ("qrr", "isr") and ln.payment_reference:
            keys.add(f"qrr:{ln.payment_reference}")
        keys.update(_number_candidates(ln.text))
    return keys


def _may_pay(line: StatementLine) -> bool:
    """A booked credit the bank neither reversed nor returned: one that may pay an invoice."""
    return line.kind == "credit" and line.booked and not line.reversal and not line.returned


def match_bank(session: Session, parsed: ParsedStatement, import_id: str,
               svc: PaymentService) -> list[dict[str, Any]]:
    """Match every line of a parsed camt file; returns the reconciliation results."""
    now = svc.now()
    lines = parsed.lines
    known = _known(session, parsed.source, lines)
    # An invoice named by one line only, paid exactly, is recorded in bulk; the rest (partial,
    # over, several lines for one invoice, charges) one by one through record_manual_payment.
    resolved = {i: known.resolve(ln) for i, ln in enumerate(lines) if _may_pay(ln)}
    named = Counter(rec.invoice_id for rec, _how in resolved.values() if rec is not None)
    run = _BankMatch(session, svc, import_id, parsed.source, now, known, resolved, named)
    for i, line in enumerate(lines):
        run.line(i, line)
    if run.bulk:
        _record_bulk(session, svc, import_id, run.bulk, run.results)
    _insert_bank_lines(session, run.new_rows)
    return run.results + _unbooked_transfers(session, parsed, import_id, run.seen_manual)


_Bulk = list[tuple[dict[str, Any], StatementLine, _Rec, dict[str, Any]]]
_LINE_UPDATES = ("import_id", "status", "outcome", "detail", "payment_ids", "updated_at")


@dataclass
class _BankMatch:
    """One file's matching: what the database knew before it, and what it decided so far
    (new bank lines, exact payments left for the bulk write, results)."""

    session: Session
    svc: PaymentService
    import_id: str
    account: str
    now: datetime
    known: _Known
    resolved: dict[int, tuple[_Rec | None, str]]
    named: Counter[str]
    results: list[dict[str, Any]] = field(default_factory=list)
    seen_manual: set[str] = field(default_factory=set)
    new_rows: list[dict[str, Any]] = field(default_factory=list)
    bulk: _Bulk = field(default_factory=list)

    def line(self, i: int, line: StatementLine) -> None:
        identity = line.provider_ref or ""
        existing_row = self.known.existing.get(identity)
        if existing_row is not None and not (existing_row.status == "pending" and line.booked):
            self.results += _seen_before(self.import_id, line, existing_row)
            return
        old = self.known.legacy.get(f"bank:{self.account}:{identity}")
        if old is not None:  # recorded by an import before bank lines were kept
            self.results.append(_compare(self.import_id, line, old, old.amount))
            return
        row = _line_row(self.import_id, self.account, line, existing_row, self.now)
        self._treat(i, line, row)
        if existing_row is None:
            self.new_rows.append(row)
        else:
            for key in _LINE_UPDATES:
                setattr(existing_row, key, row[key])

    def _treat(self, i: int, line: StatementLine, row: dict[str, Any]) -> None:
        if not line.booked:
            return
        if line.reversal or line.returned:
            self._open(line, row, "reversal" if line.reversal else "returned", _undone_detail(line))
        elif line.kind != "credit":
            row.update(status="skipped", outcome="skipped")
        else:
            self._credit(line, row, self.resolved[i])

    def _open(self, line: StatementLine, row: dict[str, Any], outcome: str, detail: str,
              rec: _Rec | None = None) -> None:
        """A line left to a person; `rec` is the invoice it names, when it names one."""
        row.update(status="open", outcome=outcome, detail=detail)
        if rec is None:
            self.results.append(_result(self.import_id, line, outcome, detail=detail))
        else:
            self.results.append(_result(self.import_id, line, outcome, expected=rec.remaining,
                                        expected_currency=rec.currency, detail=detail, customer=rec.customer_id))

    def _credit(self, line: StatementLine, row: dict[str, Any], found: tuple[_Rec | None, str]) -> None:
        pre = next((p for p in self.known.manual.get(line.payment_reference or "", [])
                    if p.id not in self.seen_manual), None)
        if pre is not None:  # an admin recorded it before the statement came
            self.seen_manual.add(pre.id)
            r = _compare(self.import_id, line, pre, pre.amount)
            row.update(status="matched", outcome=r["status"], payment_ids=[pre.id])
            self.results.append(r)
            return
        rec, how = found
        if rec is None:
            self._open(line, row, "missing_in_ledger", _missing_detail(line))
        elif rec.currency != line.currency:
            self._open(line, row, "currency_mismatch", _currency_detail(line, rec), rec)
        else:
            self._pay(line, row, rec, None if how == "RF reference" else f"matched by {how}")

    def _pay(self, line: StatementLine, row: dict[str, Any], rec: _Rec, how_detail: str | None) -> None:
        if (self.named[rec.invoice_id] == 1 and rec.status == "open" and not line.charges_deducted
                and line.amount == rec.remaining > 0):
            r = _result(self.import_id, line, "matched", expected=rec.remaining, expected_currency=rec.currency,
                        detail=how_detail, customer=rec.customer_id)
            row.update(status="matched", outcome="matched", detail=how_detail)
            self.bulk.append((row, line, rec, r))
            self.results.append(r)
            return
        expected = max(rec.remaining, ZERO)
        paid = line.amount + line.charges_deducted
        payment = _apply(self.session, self.svc, row["booked_on"], row["reference"], rec.invoice_id, paid,
                         line.charges_deducted,
                         f"bank:{self.account}:{line.provider_ref}", line.provider_ref or "",
                         f"reconciliation:{self.import_id}", self.account)
        row["payment_ids"] = [*row["payment_ids"], payment.id]  # [] from _line_row
        r = _compare(self.import_id, line, payment, expected, paid=paid)
        if r["status"] == "amount_mismatch":
            r["detail"] = self._mismatch_detail(rec.invoice_id, paid, expected)
        elif how_detail:
            r["detail"] = how_detail
        row.update(status="matched", outcome=r["status"], detail=r["detail"])
        self.results.append(r)

    def _mismatch_detail(self, invoice_id: str, paid: Decimal, expected: Decimal) -> str:
        left = self.session.get(Receivable, invoice_id)
        if paid >= expected:
            return f"overpayment of invoice {invoice_id}: {paid - expected} to customer credit"
        return f"partial payment of invoice {invoice_id}: {left.remaining if left else '?'} still due"


def _undone_detail(line: StatementLine) -> str:
    if line.reversal:
        return f"the bank reversed an earlier {'debit' if line.kind == 'credit' else 'credit'}"
    return f"a returned payment (reason {line.returned})"


def _missing_detail(line: StatementLine) -> str:
    if line.payment_reference:
        return f"no invoice has reference {line.payment_reference}"
    return "no reference, and no invoice number in the text"


def _currency_detail(line: StatementLine, rec: _Rec) -> str:
    sent = f"; {line.instructed[0]} {line.instructed[1]} sent" if line.instructed else ""
    return f"invoice {rec.invoice_id} is in {rec.currency}, the credit in {line.currency}{sent}; not applied"


def _seen_before(import_id: str, line: StatementLine, existing_row: BankLine) -> list[dict[str, Any]]:
    """A line known from an earlier file: reported again only as applied, or when the bank
    changed its amount (a line still open is listed once, and published once)."""
    same = existing_row.amount == line.amount
    if line.booked and line.kind == "credit" and not line.reversal and (
            not same or existing_row.status in ("matched", "resolved")):
        return [_result(
            import_id, line, "matched" if same else "amount_mismatch", expected=existing_row.amount,
            expected_currency=existing_row.currency,
            detail=None if same else f"the bank reported {existing_row.amount} for this entry before")]
    return []


def _line_row(import_id: str, account: str, line: StatementLine, existing_row: BankLine | None,
              now: datetime) -> dict[str, Any]:
    identity = line.provider_ref or ""
    return {
        "id": existing_row.id if existing_row else None, "import_id": import_id, "account": account,
        "identity": identity[:100], "position": line.where[:80], "kind": line.kind, "amount": line.amount,
        "currency": line.currency, "booked_on": _day(line), "reference": line.payment_reference,
        "ref_kind": line.ref_kind, "text": line.text, "debtor": line.debtor, "details": _details(line),
        "status": "pending", "outcome": "pending", "detail": None, "payment_ids": [],
        "created_at": now, "updated_at": now,
    }


def _insert_bank_lines(session: Session, new_rows: list[dict[str, Any]]) -> None:
    ids = _fast_ids("bl", len(new_rows))
    for row, new_id in zip(new_rows, ids, strict=True):
        row["id"] = new_id
    if session.get_bind().dialect.name == "postgresql" and len(new_rows) >= 100:
        _copy_bank_lines(session, new_rows)
    else:
        _bulk_insert(session, BankLine, new_rows)
    session.flush()


def _unbooked_transfers(session: Session, parsed: ParsedStatement, import_id: str,
                        seen_manual: set[str]) -> list[dict[str, Any]]:
    """Manual bank-transfer payments of the period the bank never booked."""
    results: list[dict[str, Any]] = []
    for p in session.scalars(select(Payment).where(
            Payment.provider == "manual", Payment.method_type == "bank_transfer",
            Payment.status.in_(("succeeded", "refunded")),
            Payment.captured_at >= parsed.period_start, Payment.captured_at < parsed.period_end)):
        if p.id not in seen_manual:
            results.append({
                "import_id": import_id, "line_no": 0, "status": "missing_at_provider", "kind": "credit",
                "provider_ref": p.provider_ref, "payment_reference": p.idempotency_key, "payment_id": p.id,
                "expected_amount": p.amount, "actual_amount": None, "expected_currency": p.currency,
                "actual_currency": None, "fee": None, "payout_id": None,
                "detail": "recorded as a bank transfer, not on the statement", "_customer": p.customer_id,
            })
    return results


def _record_bulk(session: Session, svc: PaymentService, import_id: str,
                 bulk: list[tuple[dict[str, Any], StatementLine, _Rec, dict[str, Any]]],
                 results: list[dict[str, Any]]) -> None:
    """Exact payments of distinct open invoices, written as record_manual_payment writes one
    (payment, receivable paid, journal entry, payment.succeeded) but in a few statements
    (tests/payments/test_bank_bulk.py holds the two equal)."""
    if session.get_bind().dialect.name == "postgresql":
        _record_bulk_pg(session, svc, import_id, bulk)
        return
    now = svc.now()
    account = bulk[0][0]["account"]
    payments: list[dict[str, Any]] = []
    journal_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    updates: list[tuple[str, Decimal, Decimal]] = []
    for (row, line, rec, r), pid in zip(bulk, _fast_ids("pay", len(bulk)), strict=True):
        amount, cur = line.amount, rec.currency
        when = row["booked_on"] or now
        money = str(amount.quantize(quantum(cur)))
        payments.append({
            "id": pid, "idempotency_key": f"bank:{account}:{line.provider_ref}", "invoice_id": rec.invoice_id,
            "customer_id": rec.customer_id, "attempt": 0, "provider": "bank", "method_type": "bank_transfer",
            "method_id": None, "amount": amount, "currency": cur, "status": "succeeded",
            "provider_ref": (line.provider_ref or "")[:100],
            "payment_reference": normalise_reference(row["reference"] or rec.payment_reference),
            "decline_code": None, "retryable": None, "needs_lookup": False, "refunded_amount": ZERO,
            "captured_at": when, "recorded_by": f"reconciliation:{import_id}"[:64], "created_at": now,
            "updated_at": now,
        })
        for no, (acct, debit, credit) in enumerate(((journal.bank_cash_account(account), amount, ZERO),
                                                    (journal.RECEIVABLES, ZERO, amount)), start=1):
            journal_rows.append({"entry_id": f"pay:{pid}", "line_no": no, "entry_date": when, "account": acct,
                                 "debit": debit, "credit": credit, "currency": cur,
                                 "description": "payment bank_transfer via bank", "reference": rec.invoice_id})
        events.append({"type": "payment.succeeded", "customer_id": rec.customer_id, "time": now,
                       "attempts": 0, "properties": {
            "payment_id": pid, "invoice_id": rec.invoice_id, "amount": money, "currency": cur,
            "method": "bank_transfer", "provider": "bank", "provider_reference": (line.provider_ref or "")[:100],
            "attempt": 0, "applied_to_invoice": money, "credited": str(ZERO.quantize(quantum(cur))),
            "invoice_amount_paid": str((rec.amount_paid + amount + rec.credit_applied).quantize(quantum(cur))),
            "invoice_remaining": str(ZERO.quantize(quantum(cur))), "invoice_paid": True,
        }})
        updates.append((rec.invoice_id, rec.amount_paid, rec.amount_paid + amount))
        row["payment_ids"] = [pid]
        r["payment_id"] = pid
    _mark_paid(session, updates)
    _bulk_insert(session, Payment, payments)
    _bulk_insert(session, JournalLine, journal_rows)
    for event, eid in zip(events, _fast_ids("evt", len(events)), strict=True):
        event["id"] = eid
    _bulk_insert(session, OutboxEvent, events)


def _record_bulk_pg(session: Session, svc: PaymentService, import_id: str,
                    bulk: list[tuple[dict[str, Any], StatementLine, _Rec, dict[str, Any]]]) -> None:
    """_record_bulk on PostgreSQL: one compact row per payment is copied into a temporary
    table, and the payments, journal lines, receivables and events are written from it by the
    database (the same rows as the portable path; the bulk test runs on both)."""
    now = svc.now()
    account = bulk[0][0]["account"]
    e = _copy_value
    out = []
    ids = _fast_ids("pay", len(bulk))
    events = _fast_ids("evt", len(bulk))
    for n, ((row, line, rec, r), pid, eid) in enumerate(zip(bulk, ids, events, strict=True)):
        q = quantum(rec.currency)
        zero = str(ZERO.quantize(q))
        ref = line.provider_ref or ""
        out.append(f"{n}\t{pid}\t{eid}\t{e(rec.invoice_id)}\t{e(rec.customer_id)}\t{line.amount}\t{rec.currency}\t"
                   f"{e(ref[:100])}\t{e(normalise_reference(row['reference'] or rec.payment_reference))}\t"
                   f"{(row['booked_on'] or now).isoformat()}\t{e(f'bank:{account}:{ref}')}\t"
                   f"{line.amount.quantize(q)}\t{(rec.amount_paid + line.amount + rec.credit_applied).quantize(q)}\t"
                   f"{zero}\n")
        row["payment_ids"] = [pid]
        r["payment_id"] = pid
    raw = session.connection().connection.driver_connection
    params = {"now": now, "by": f"reconciliation:{import_id}"[:64], "cash": journal.bank_cash_account(account),
              "recv": journal.RECEIVABLES}
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute("CREATE TEMP TABLE pay_bank_bulk (n int, payment_id text, event_id text, invoice_id text, "
                    "customer_id text, amount numeric, currency text, provider_ref text, payment_reference text, "
                    "captured_at timestamptz, key text, money text, paid_text text, zero text) "
                    "ON COMMIT DROP")
        with cur.copy("COPY pay_bank_bulk FROM STDIN") as copy:
            for i in range(0, len(out), 10_000):
                copy.write("".join(out[i:i + 10_000]))
        cur.execute("ANALYZE pay_bank_bulk")  # a temporary table has no statistics: plan the joins on real ones
        # Relative to what is in the row now, and only if it still owes exactly this: a payment
        # that arrived meanwhile (a card, another import) makes the whole import stop.
        cur.execute("UPDATE pay_receivables AS r SET amount_paid = r.amount_paid + b.amount, status = 'paid' "
                    "FROM pay_bank_bulk b WHERE r.invoice_id = b.invoice_id AND r.status = 'open' "
                    "AND r.amount_due - r.amount_paid - r.credit_applied = b.amount")
        if cur.rowcount != len(bulk):
            _changed_meanwhile(len(bulk) - cur.rowcount)
        cur.execute(
            "INSERT INTO pay_payments (id, idempotency_key, invoice_id, customer_id, attempt, provider, method_type, "
            "amount, currency, status, provider_ref, payment_reference, needs_lookup, refunded_amount, captured_at, "
            "recorded_by, created_at, updated_at) SELECT payment_id, key, invoice_id, customer_id, 0, 'bank', "
            "'bank_transfer', amount, currency, 'succeeded', provider_ref, payment_reference, false, 0, captured_at, "
            "%(by)s, %(now)s, %(now)s FROM pay_bank_bulk ORDER BY n", params)
        cur.execute(
            "INSERT INTO pay_journal (entry_id, line_no, entry_date, account, debit, credit, currency, description, "
            "reference) SELECT 'pay:' || payment_id, v.no, captured_at, CASE v.no WHEN 1 THEN %(cash)s ELSE %(recv)s "
            "END, CASE v.no WHEN 1 THEN amount ELSE 0 END, CASE v.no WHEN 1 THEN 0 ELSE amount END, currency, "
            "'payment bank_transfer via bank', invoice_id FROM pay_bank_bulk CROSS JOIN (VALUES (1), (2)) AS v(no) "
            "ORDER BY n, v.no", params)
        cur.execute(
            "INSERT INTO outbox_events (id, type, customer_id, time, properties, attempts) SELECT event_id, "
            "'payment.succeeded', customer_id, %(now)s, json_build_object('payment_id', payment_id, 'invoice_id', "
            "invoice_id, 'amount', money, 'currency', currency, 'method', 'bank_transfer', 'provider', 'bank', "
            "'provider_reference', provider_ref, 'attempt', 0, 'applied_to_invoice', money, 'credited', zero, "
            "'invoice_amount_paid', paid_text, 'invoice_remaining', zero, 'invoice_paid', true), 0 "
            "FROM pay_bank_bulk ORDER BY n", params)
        cur.execute("DROP TABLE pay_bank_bulk")


_BANK_LINE_COLUMNS = ("id", "import_id", "account", "identity", "position", "kind", "amount", "currency",
                      "booked_on", "reference", "ref_kind", "text", "debtor", "details", "status", "outcome",
                      "detail", "payment_ids", "created_at", "updated_at")


def _copy_bank_lines(session: Session, rows: list[dict[str, Any]]) -> None:
    """New bank lines by COPY, one f-string per row (a generic per-value formatter costs
    more than the database's whole insert at 100,000 lines)."""
    e, j = _copy_value, _copy_json
    now = rows[0]["created_at"].isoformat()
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
            f"COPY {BankLine.__tablename__} ({', '.join(_BANK_LINE_COLUMNS)}) FROM STDIN") as copy:
        for i in range(0, len(rows), 10_000):
            copy.write("".join(
                f"{r['id']}\t{e(r['import_id'])}\t{e(r['account'])}\t{e(r['identity'])}\t{e(r['position'])}\t"
                f"{r['kind']}\t{r['amount']}\t{r['currency']}\t{e(r['booked_on'])}\t{e(r['reference'])}\t"
                f"{e(r['ref_kind'])}\t{e(r['text'])}\t{e(r['debtor'])}\t{j(r['details'])}\t{r['status']}\t"
                f"{r['outcome']}\t{e(r['detail'])}\t{j(r['payment_ids'])}\t{now}\t{now}\n"
                for r in rows[i:i + 10_000]))


def _mark_paid(session: Session, updates: list[tuple[str, Decimal, Decimal]]) -> None:
    """Each receivable paid in full, if it still has what was read (see _record_bulk_pg)."""
    changed = 0
    for invoice_id, paid_before, paid_now in updates:
        res = session.connection().execute(
            update(Receivable).where(Receivable.invoice_id == invoice_id, Receivable.status == "open",
                                     Receivable.amount_paid == paid_before)
            .values(amount_paid=paid_now, status="paid"))
        changed += res.rowcount
    if changed != len(updates):
        _changed_meanwhile(len(updates) - changed)


class ReconciliationError(ValueError):
    """A statement that cannot be reconciled as it stands; nothing of it was imported."""


def _changed_meanwhile(n: int) -> None:
    raise ReconciliationError(f"{n} invoice(s) the file pays changed while it was reconciled (a payment arrived "
                              "meanwhile); nothing was imported: import the file again")


def _bulk_insert(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """Many rows of one table in one executemany INSERT (PostgreSQL's large batches go by
    COPY: _record_bulk_pg, _copy_bank_lines)."""
    if rows:
        session.connection().execute(insert(model), rows)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: Any) -> str:
    """One value in COPY's text format: \\N for NULL, escapes in text, ISO times."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value if value.isprintable() and "\\" not in value else value.translate(_COPY_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _copy_json(value: Any) -> str:
    if value is None:
        return "\\N"
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    if type(value) is list and len(value) == 1:
        # A line paid by one payment: its id is plain (ASCII letters, digits, "_"), so this is
        # what json.dumps writes, without its encoder's per-call cost (100,000 lines, 0.3 s).
        only = value[0]
        if type(only) is str and only.isascii() and only.isidentifier():
            return f'["{only}"]'
    return json.dumps(value).translate(_COPY_ESCAPES)


def _compare(import_id: str, line: StatementLine, payment: Payment, expected: Decimal,
             paid: Decimal | None = None) -> dict[str, Any]:
    paid = line.amount if paid is None else paid
    if payment.currency != line.currency:
        return _result(import_id, line, "currency_mismatch", payment=payment, expected=expected,
                       expected_currency=payment.currency,
                       detail=f"ledger has {payment.currency}, the file {line.currency}")
    if expected != paid:
        q = quantum(payment.currency)
        return _result(import_id, line, "amount_mismatch", payment=payment, expected=expected,
                       expected_currency=payment.currency,
                       detail=f"ledger has {expected.quantize(q)}, the file {paid.quantize(q)}")
    return _result(import_id, line, "matched", payment=payment, expected=expected,
                   expected_currency=payment.currency)


def _apply(session: Session, svc: PaymentService, booked_on: datetime | None, reference: str | None,
           invoice_id: str, amount: Decimal, charges: Decimal, key: str, provider_ref: str,
           recorded_by: str, account: str) -> Payment:
    """Record `amount` as a bank transfer paying the invoice; journal the charges the bank
    kept. `booked_on` and `reference` are the bank line's, `account` its statement's (the
    money is journalled on `cash:bank:<account>`); the caller adds the payment to its
    payment_ids."""
    cash = journal.bank_cash_account(account)
    rec = session.get_one(Receivable, invoice_id)
    payment = record_manual_payment(
        session, customer_id=rec.customer_id, amount=amount, currency=rec.currency,
        invoice_id=rec.invoice_id, method_type="bank_transfer", reference=reference or rec.payment_reference,
        received_at=booked_on, recorded_by=recorded_by[:64], idempotency_key=key,
        provider="bank", provider_ref=provider_ref[:100], cash_account=cash, service=svc,
    )
    if charges:
        journal.post_entry(
            session, f"bankfee:{payment.id}", booked_on or svc.now(), rec.currency,
            [Posting(BANK_CHARGES, debit=charges), Posting(cash, credit=charges)],
            f"charges the bank kept from a transfer for invoice {rec.invoice_id}", rec.invoice_id,
        )
    return payment


# --- what a person finishes --------------------------------------------------------------------


def line_to_dict(row: BankLine) -> dict[str, Any]:
    q = quantum(row.currency)
    return {
        "id": row.id, "import_id": row.import_id, "account": row.account, "identity": row.identity,
        "position": row.position, "kind": row.kind, "amount": str(row.amount.quantize(q)),
        "currency": row.currency, "booked_on": row.booked_on.date().isoformat() if row.booked_on else None,
        "reference": row.reference, "reference_kind": row.ref_kind, "text": row.text, "debtor": row.debtor,
        "details": row.details, "status": row.status, "outcome": row.outcome, "detail": row.detail,
        "payment_ids": list(row.payment_ids),
    }


def list_lines(session: Session, *, status: str | None = "open", limit: int = 100,
               suggest: bool = True) -> list[dict[str, Any]]:
    """Bank lines (by default the open ones, oldest first), each with up to five suggested
    invoices: same amount, due close to the booking date, a similar reference."""
    stmt = select(BankLine).order_by(BankLine.booked_on, BankLine.created_at, BankLine.id).limit(limit)
    if status:
        stmt = stmt.where(BankLine.status == status)
    rows = list(session.scalars(stmt))
    out = [line_to_dict(r) for r in rows]
    if suggest:
        found = suggestions(session, [r for r in rows if r.status == "open" and r.kind == "credit"])
        for item in out:
            item["suggestions"] = found.get(item["id"], [])
    return out


def get_line(session: Session, line_id: str) -> dict[str, Any]:
    row = session.get(BankLine, line_id)
    if row is None:
        raise PaymentNotFound(f"no bank line {line_id!r}", "line_id")
    out = line_to_dict(row)
    out["suggestions"] = suggestions(session, [row]).get(row.id, []) if row.status == "open" else []
    out["decisions"] = [decision_to_dict(d) for d in session.scalars(
        select(ReconciliationDecision).where(ReconciliationDecision.line_id == line_id)
        .order_by(ReconciliationDecision.decided_at))]
    return out


def suggestions(session: Session, rows: Sequence[BankLine]) -> dict[str, list[dict[str, Any]]]:
    if not rows:
        return {}
    currencies = {r.currency for r in rows}
    open_recs = list(session.scalars(select(Receivable).where(
        Receivable.status == "open", Receivable.currency.in_(currencies))))
    numbers: dict[str, list[str]] = {}
    for ref in _in_chunks(session, InvoiceReference.invoice_id, (r.invoice_id for r in open_recs)):
        if ref.kind == "number":
            numbers.setdefault(ref.invoice_id, []).append(ref.reference.split(":", 1)[1])
    return {row.id: _suggest(row, open_recs, numbers) for row in rows}


def _suggest(row: BankLine, open_recs: list[Receivable], numbers: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Up to five open invoices this line may pay, the most likely first, each with its reasons."""
    amount = abs(row.amount) + Decimal(row.details.get("charges_deducted", "0"))
    words = [w for w in (number_key(w) for w in _WORD.findall(" ".join(filter(None, [row.reference, row.text]))))
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


def decision_to_dict(d: ReconciliationDecision) -> dict[str, Any]:
    return {"id": d.id, "line_id": d.line_id, "action": d.action, "allocations": d.allocations,
            "actor": d.actor, "reason": d.reason, "decided_at": d.decided_at.isoformat()}


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
        payment = _apply(session, svc, row.booked_on, row.reference, rec.invoice_id, amount, share,
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
