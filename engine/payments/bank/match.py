"""Matching a parsed camt file, line by line: what each line is (applied, open for a person,
skipped, pending) and the reconciliation results; the writes are engine/payments/bank/write.py's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.money import quantum
from engine.payments import journal
from engine.payments.bank.apply import apply_transfer
from engine.payments.bank.lookup import Known, Rec, known_of
from engine.payments.bank.payouts import Payouts
from engine.payments.bank.payouts import detail as payout_detail
from engine.payments.bank.write import Bulk, PendingLines, record_bulk
from engine.payments.models import (
    BankLine,
    Payment,
    Receivable,
)
from engine.payments.service import PaymentService
from engine.payments.statements import ParsedStatement, StatementLine

ZERO = Decimal(0)
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


@lru_cache(maxsize=1024)
def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _day(line: StatementLine) -> datetime | None:
    """The booking day's midnight (one object per day, not per line)."""
    return _midnight(line.booked_on) if line.booked_on else None


def _may_pay(line: StatementLine) -> bool:
    """A booked credit the bank neither reversed nor returned: one that may pay an invoice."""
    return line.kind == "credit" and line.booked and not line.reversal and not line.returned


def match_bank(session: Session, parsed: ParsedStatement, import_id: str,
               svc: PaymentService) -> list[dict[str, Any]]:
    """Match every line of a parsed camt file; returns the reconciliation results."""
    now = svc.now()
    lines = parsed.lines
    known = known_of(session, parsed.source, lines)
    # An invoice named by one line only, paid exactly, is recorded in bulk; the rest (partial,
    # over, several lines for one invoice, charges) one by one through record_manual_payment.
    resolved = {i: known.resolve(ln) for i, ln in enumerate(lines) if _may_pay(ln)}
    named = Counter(rec.invoice_id for rec, _how in resolved.values() if rec is not None)
    run = _BankMatch(session, svc, import_id, parsed.source, now, known, resolved, named)
    for i, line in enumerate(lines):
        run.line(i, line)
    new_lines = PendingLines(session, run.new_rows)
    if run.bulk:  # the new lines' COPY text is formatted while the database writes the payments
        record_bulk(session, svc, import_id, run.bulk, run.results, new_lines.prepare)
    new_lines.write()
    return run.results + _unbooked_transfers(session, parsed, import_id, run.seen_manual)


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
    known: Known
    resolved: dict[int, tuple[Rec | None, str]]
    named: Counter[str]
    results: list[dict[str, Any]] = field(default_factory=list)
    seen_manual: set[str] = field(default_factory=set)
    new_rows: list[dict[str, Any]] = field(default_factory=list)
    bulk: Bulk = field(default_factory=list)
    payouts: Payouts = field(init=False)

    def __post_init__(self) -> None:
        self.payouts = Payouts(self.account)

    def line(self, i: int, line: StatementLine) -> None:
        identity = line.provider_ref or ""
        existing_row = self.known.existing.get(identity)
        if existing_row is not None and not (existing_row.status == "pending" and line.booked):
            self.results += _seen_before(self.import_id, line, existing_row)
            return
        old = self.known.legacy.get(f"bank:{self.account}:{identity}")
        if old is not None:  # recorded by an import before bank lines were kept
            self.results.append(compare(self.import_id, line, old, old.amount))
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
              rec: Rec | None = None) -> None:
        """A line left to a person; `rec` is the invoice it names, when it names one."""
        row.update(status="open", outcome=outcome, detail=detail)
        if rec is None:
            self.results.append(_result(self.import_id, line, outcome, detail=detail))
        else:
            self.results.append(_result(self.import_id, line, outcome, expected=rec.remaining,
                                        expected_currency=rec.currency, detail=detail, customer=rec.customer_id))

    def _credit(self, line: StatementLine, row: dict[str, Any], found: tuple[Rec | None, str]) -> None:
        recorded = self.known.manual.get(line.payment_reference or "")
        pre = next((p for p in recorded if p.id not in self.seen_manual), None) if recorded else None
        if pre is not None:  # an admin recorded it before the statement came
            self.seen_manual.add(pre.id)
            r = compare(self.import_id, line, pre, pre.amount)
            row.update(status="matched", outcome=r["status"], payment_ids=[pre.id])
            self.results.append(r)
            return
        rec, how = found
        if rec is None:
            self._no_invoice(line, row)
        elif rec.currency != line.currency:
            self._open(line, row, "currency_mismatch", _currency_detail(line, rec), rec)
        else:
            self._pay(line, row, rec, None if how == "RF reference" else f"matched by {how}")

    def _no_invoice(self, line: StatementLine, row: dict[str, Any]) -> None:
        """A credit naming no invoice: a provider's payout to this account (its entry already
        debited it: nothing more is posted), else money nobody recorded, left to a person."""
        payout = self.payouts.find(self.session, line)
        if payout is None:
            self._open(line, row, "missing_in_ledger", _missing_detail(line))
            return
        said = payout_detail(payout, journal.bank_cash_account(self.account))
        row.update(status="matched", outcome="matched", detail=said)
        self.results.append(_result(self.import_id, line, "matched", expected=line.amount,
                                    expected_currency=line.currency, detail=said))

    def _pay(self, line: StatementLine, row: dict[str, Any], rec: Rec, how_detail: str | None) -> None:
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
        payment = apply_transfer(self.session, self.svc, row["booked_on"], row["reference"], rec.invoice_id, paid,
                         line.charges_deducted,
                         f"bank:{self.account}:{line.provider_ref}", line.provider_ref or "",
                         f"reconciliation:{self.import_id}", self.account)
        row["payment_ids"] = [*row["payment_ids"], payment.id]  # [] from _line_row
        r = compare(self.import_id, line, payment, expected, paid=paid)
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


def _currency_detail(line: StatementLine, rec: Rec) -> str:
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


def compare(import_id: str, line: StatementLine, payment: Payment, expected: Decimal,
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
