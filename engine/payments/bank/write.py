"""Writing a file's bank lines and its exact payments in bulk: a few statements (PostgreSQL:
COPY and INSERT ... SELECT from a temporary table) that write what record_manual_payment
writes one by one (tests/payments/test_bank_bulk.py holds the two equal).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from engine.money import quantum
from engine.payments import journal
from engine.payments.bank.lookup import Rec
from engine.payments.models import (
    BankLine,
    JournalLine,
    Payment,
    Receivable,
)
from engine.payments.references import normalise_reference
from engine.payments.service import PaymentService
from engine.payments.statements import StatementLine
from engine.store import OutboxEvent, new_event_id, note_outbox_write

ZERO = Decimal(0)
Bulk = list[tuple[dict[str, Any], StatementLine, Rec, dict[str, Any]]]


def fast_ids(prefix: str, n: int) -> list[str]:
    """n distinct ids sharing one time-ordered stem (new_event_id per row costs a second at
    100,000 rows)."""
    stem = new_event_id(prefix)[:-6]
    return [f"{stem}{i:06x}" for i in range(n)]


class PendingLines:
    """A file's new bank lines and, on PostgreSQL, their COPY text, formatted once: while the
    database writes the exact payments (record_bulk's `meanwhile`), or when they are written."""

    def __init__(self, session: Session, rows: list[dict[str, Any]]) -> None:
        self.session, self.rows = session, rows
        self.copy = session.get_bind().dialect.name == "postgresql" and len(rows) >= 100
        self.text: list[str] | None = None
        for row, new_id in zip(rows, fast_ids("bl", len(rows)), strict=True):
            row["id"] = new_id

    def prepare(self) -> None:
        if self.copy and self.text is None:
            self.text = [_bank_lines_text(self.rows[i:i + 10_000]) for i in range(0, len(self.rows), 10_000)]

    def write(self) -> None:
        if self.copy:
            self.prepare()
            _copy_bank_lines(self.session, self.text or [])
        else:
            _bulk_insert(self.session, BankLine, self.rows)
        self.session.flush()


def record_bulk(session: Session, svc: PaymentService, import_id: str, bulk: Bulk,
                results: list[dict[str, Any]], meanwhile: Callable[[], None] = lambda: None) -> None:
    """Exact payments of distinct open invoices, written as record_manual_payment writes one
    (payment, receivable paid, journal entry, payment.succeeded) but in a few statements
    (tests/payments/test_bank_bulk.py holds the two equal). `meanwhile` is Python work the
    caller has next that needs nothing of these writes: on PostgreSQL it runs while the
    database writes."""
    if session.get_bind().dialect.name == "postgresql":
        _record_bulk_pg(session, svc, import_id, bulk, meanwhile)
        return
    now = svc.now()
    account = bulk[0][0]["account"]
    payments: list[dict[str, Any]] = []
    journal_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    updates: list[tuple[str, Decimal, Decimal]] = []
    for (row, line, rec, r), pid in zip(bulk, fast_ids("pay", len(bulk)), strict=True):
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
    for event, eid in zip(events, fast_ids("evt", len(events)), strict=True):
        event["id"] = eid
    _bulk_insert(session, OutboxEvent, events)


def _record_bulk_pg(session: Session, svc: PaymentService, import_id: str, bulk: Bulk,
                    meanwhile: Callable[[], None]) -> None:
    """record_bulk on PostgreSQL: one compact row per payment is copied into a temporary
    table, and the payments, journal lines, receivables and events are written from it by the
    database (the same rows as the portable path; the bulk test runs on both). The statements
    go in one pipeline: the database writes while `meanwhile` runs."""
    now = svc.now()
    account = bulk[0][0]["account"]
    out = _bulk_rows(bulk, account, now)
    raw = session.connection().connection.driver_connection
    note_outbox_write(session)  # its payment.succeeded rows go in by raw SQL (_BULK_INSERTS)
    params = {"now": now, "by": f"reconciliation:{import_id}"[:64], "cash": journal.bank_cash_account(account),
              "recv": journal.RECEIVABLES}
    with raw.cursor() as cur, raw.cursor() as paid:  # type: ignore[union-attr]
        cur.execute("CREATE TEMP TABLE pay_bank_bulk (n int, payment_id text, event_id text, invoice_id text, "
                    "customer_id text, amount numeric, currency text, provider_ref text, payment_reference text, "
                    "captured_at timestamptz, key text, money text, paid_text text, zero text) "
                    "ON COMMIT DROP")
        with cur.copy("COPY pay_bank_bulk FROM STDIN") as copy:
            for i in range(0, len(out), 10_000):
                copy.write("".join(out[i:i + 10_000]))
        with raw.pipeline():  # type: ignore[union-attr]
            cur.execute("ANALYZE pay_bank_bulk")  # a temporary table has no statistics: plan the joins on real ones
            # Relative to what is in the row now, and only if it still owes exactly this: a payment
            # that arrived meanwhile (a card, another import) makes the whole import stop.
            paid.execute("UPDATE pay_receivables AS r SET amount_paid = r.amount_paid + b.amount, status = 'paid' "
                         "FROM pay_bank_bulk b WHERE r.invoice_id = b.invoice_id AND r.status = 'open' "
                         "AND r.amount_due - r.amount_paid - r.credit_applied = b.amount")
            for statement in _BULK_INSERTS:
                cur.execute(statement, params)
            cur.execute("DROP TABLE pay_bank_bulk")
            meanwhile()
        if paid.rowcount != len(bulk):
            _changed_meanwhile(len(bulk) - paid.rowcount)


def _bulk_rows(bulk: Bulk, account: str, now: datetime) -> list[str]:
    """The temporary table's rows as COPY text; each line's payment gets its id."""
    e = _copy_value
    out = []
    ids = fast_ids("pay", len(bulk))
    events = fast_ids("evt", len(bulk))
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
    return out


_BULK_INSERTS = (
    "INSERT INTO pay_payments (id, idempotency_key, invoice_id, customer_id, attempt, provider, method_type, "
    "amount, currency, status, provider_ref, payment_reference, needs_lookup, refunded_amount, captured_at, "
    "recorded_by, created_at, updated_at) SELECT payment_id, key, invoice_id, customer_id, 0, 'bank', "
    "'bank_transfer', amount, currency, 'succeeded', provider_ref, payment_reference, false, 0, captured_at, "
    "%(by)s, %(now)s, %(now)s FROM pay_bank_bulk ORDER BY n",
    "INSERT INTO pay_journal (entry_id, line_no, entry_date, account, debit, credit, currency, description, "
    "reference) SELECT 'pay:' || payment_id, v.no, captured_at, CASE v.no WHEN 1 THEN %(cash)s ELSE %(recv)s "
    "END, CASE v.no WHEN 1 THEN amount ELSE 0 END, CASE v.no WHEN 1 THEN 0 ELSE amount END, currency, "
    "'payment bank_transfer via bank', invoice_id FROM pay_bank_bulk CROSS JOIN (VALUES (1), (2)) AS v(no) "
    "ORDER BY n, v.no",
    "INSERT INTO outbox_events (id, type, customer_id, time, properties, attempts) SELECT event_id, "
    "'payment.succeeded', customer_id, %(now)s, json_build_object('payment_id', payment_id, 'invoice_id', "
    "invoice_id, 'amount', money, 'currency', currency, 'method', 'bank_transfer', 'provider', 'bank', "
    "'provider_reference', provider_ref, 'attempt', 0, 'applied_to_invoice', money, 'credited', zero, "
    "'invoice_amount_paid', paid_text, 'invoice_remaining', zero, 'invoice_paid', true), 0 "
    "FROM pay_bank_bulk ORDER BY n",
)


_BANK_LINE_COLUMNS = ("id", "import_id", "account", "identity", "position", "kind", "amount", "currency",
                      "booked_on", "reference", "ref_kind", "text", "debtor", "details", "status", "outcome",
                      "detail", "payment_ids", "created_at", "updated_at")


def _copy_bank_lines(session: Session, chunks: list[str]) -> None:
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
            f"COPY {BankLine.__tablename__} ({', '.join(_BANK_LINE_COLUMNS)}) FROM STDIN") as copy:
        for chunk in chunks:
            copy.write(chunk)


def _bank_lines_text(rows: list[dict[str, Any]]) -> str:
    """New bank lines in COPY's text format, one f-string per row (a generic per-value
    formatter costs more than the database's whole insert at 100,000 lines). The row's texts
    are checked for escapes at once: a bank's references and texts nearly never need one."""
    e, j = _copy_value, _copy_json
    now = rows[0]["created_at"].isoformat()
    out = []
    for r in rows:
        texts = (r["import_id"], r["account"], r["identity"], r["position"], r["reference"] or "",
                 r["ref_kind"] or "", r["text"] or "", r["debtor"] or "", r["detail"] or "")
        joined = "".join(texts)
        if joined.isprintable() and "\\" not in joined:
            out.append(
                f"{r['id']}\t{r['import_id']}\t{r['account']}\t{r['identity']}\t{r['position']}\t"
                f"{r['kind']}\t{r['amount']}\t{r['currency']}\t{e(r['booked_on'])}\t{_plain(r['reference'])}\t"
                f"{_plain(r['ref_kind'])}\t{_plain(r['text'])}\t{_plain(r['debtor'])}\t{j(r['details'])}\t"
                f"{r['status']}\t{r['outcome']}\t{_plain(r['detail'])}\t{j(r['payment_ids'])}\t{now}\t{now}\n")
            continue
        out.append(
            f"{r['id']}\t{e(r['import_id'])}\t{e(r['account'])}\t{e(r['identity'])}\t{e(r['position'])}\t"
            f"{r['kind']}\t{r['amount']}\t{r['currency']}\t{e(r['booked_on'])}\t{e(r['reference'])}\t"
            f"{e(r['ref_kind'])}\t{e(r['text'])}\t{e(r['debtor'])}\t{j(r['details'])}\t{r['status']}\t"
            f"{r['outcome']}\t{e(r['detail'])}\t{j(r['payment_ids'])}\t{now}\t{now}\n")
    return "".join(out)


def _plain(value: str | None) -> str:
    """A text known to need no escape, or NULL."""
    return "\\N" if value is None else value


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
