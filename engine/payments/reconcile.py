"""Reconciliation: what the provider settled, or the bank booked, against what we recorded.

Outcomes per line: matched, missing_in_ledger, amount_mismatch, currency_mismatch; and per
ledger record of the period that the file lacks: missing_at_provider. Every mismatch publishes
`reconciliation.mismatch`. Importing the same file again changes nothing (its SHA-256 is
unique); a different file for the same statement is refused.

Settlement CSV (a provider's day): lines match our payments and refunds by the provider's
reference, else a payment by our attempt key (the reference we sent). Payouts are journaled:
Dr cash:bank (net) + Dr provider_fees / Cr cash:<provider> (gross).

camt.053 / camt.054 (our bank account): matched line by line in engine/payments/bank/ (match.py),
which keeps every line so that a person can finish what was not matched automatically
(reversal and returned are outcomes of bank lines only).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine.money import quantum
from engine.payments import journal
from engine.payments.bank import ReconciliationError, match_bank, rows_where
from engine.payments.camt import parse_statement, paused_gc
from engine.payments.models import (
    Payment,
    Receivable,
    ReconciliationResult,
    Refund,
    SettlementImport,
)
from engine.payments.postings import debit_posting
from engine.payments.service import PaymentService
from engine.payments.settlement_pg import SettlementWriter
from engine.payments.statements import (
    ParsedStatement,
    SettlementReader,
    StatementLine,
    is_camt,
)
from engine.store import OutboxEvent, new_event_id

ZERO = Decimal(0)
MISMATCHES = ("missing_in_ledger", "missing_at_provider", "amount_mismatch", "currency_mismatch",
              "reversal", "returned")
_WRITE_CHUNK = 20_000


@dataclass
class ReconciliationReport:
    import_id: str
    kind: str
    source: str
    statement_id: str
    already_imported: bool
    counts: dict[str, int]
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id, "kind": self.kind, "source": self.source,
            "statement_id": self.statement_id, "already_imported": self.already_imported,
            "counts": self.counts, "mismatches": self.mismatches,
        }


@dataclass(slots=True)
class _Ledger:
    id: str
    provider_ref: str | None
    key: str  # the idempotency key, never null
    amount: Decimal
    currency: str
    status: str
    customer_id: str


def reconcile_file(
    session: Session,
    data: bytes,
    *,
    provider: str = "sandbox",
    filename: str | None = None,
    service: PaymentService,
    payout_accounts: Mapping[str, str] | None = None,
) -> ReconciliationReport:
    """`billing reconcile FILE`: parse (settlement CSV or camt.053, told apart by content),
    then reconcile in the caller's transaction. `payout_accounts`: the bank account each
    provider pays out to (the chart's `cash.payouts`), where a settlement's payouts are posted. A broken file raises StatementFormatError and
    leaves nothing recorded (on PostgreSQL a settlement is matched while it is parsed, under a
    savepoint that a broken line rolls back)."""
    name = filename or "statement"
    if not is_camt(data) and _match_in_database(session):
        return _reconcile_settlement_streamed(session, data, provider=provider, name=name,
                                              filename=filename, service=service, payout_accounts=payout_accounts)
    parsed = parse_statement(data, provider=provider, name=name,
                             currencies=lambda seen: used_currencies(session, seen))
    return reconcile_statement(session, parsed, filename=filename, service=service, payout_accounts=payout_accounts)


def reconcile_statement(
    session: Session,
    parsed: ParsedStatement,
    *,
    filename: str | None = None,
    service: PaymentService,
    payout_accounts: Mapping[str, str] | None = None,
) -> ReconciliationReport:
    svc = service
    done = _already_imported(session, parsed.sha256)
    if done is not None:
        return done
    _refuse_clash(session, parsed)
    now = svc.now()
    imp = _new_import(session, parsed, filename, len(parsed.lines), now)
    matched: list[tuple[Any, ...]] = []
    if parsed.kind == "settlement_csv" and _match_in_database(session):
        with SettlementWriter(session, imp.id, parsed.source) as writer:
            for i in range(0, len(parsed.lines), _WRITE_CHUNK):
                writer.send(parsed.lines[i:i + _WRITE_CHUNK])
        n_matched, results = writer.finish(parsed.period_start, parsed.period_end)
    else:
        if parsed.kind == "settlement_csv":
            matched, results = _match_settlement(session, parsed, imp.id)
        else:
            with paused_gc():
                results = match_bank(session, parsed, imp.id, svc)
        n_matched = len(matched)
        # One C-level itemgetter per row (a generator per row cost a second at 100,000 lines).
        _insert_results(session, matched + list(map(_RESULT_ROW, results)))
    if parsed.kind == "settlement_csv":
        _journal_payouts(session, parsed, _payout_totals(parsed.lines), imp.id, payout_accounts)
    return _conclude(session, imp, parsed, n_matched, results, now)


def _reconcile_settlement_streamed(
    session: Session, data: bytes, *, provider: str, name: str, filename: str | None,
    service: PaymentService, payout_accounts: Mapping[str, str] | None,
) -> ReconciliationReport:
    """A settlement CSV on PostgreSQL: each parsed chunk is sent to be matched and written while
    the next is parsed. A broken line stops the sending; the savepoint drops what was sent."""
    svc = service
    reader = SettlementReader(data, provider=provider, name=name)
    done = _already_imported(session, reader.sha256)
    if done is not None:
        return done
    import_id = new_event_id("rec")
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    with session.begin_nested():
        with SettlementWriter(session, import_id, provider) as writer:
            for chunk in reader.chunks():
                if reader.errors:
                    continue  # the file is refused; read on only to list every problem
                _payout_totals(chunk, totals)
                writer.send(chunk)
        parsed = reader.statement([])  # raises StatementFormatError for a broken file
        _refuse_clash(session, parsed)
        now = svc.now()
        imp = _new_import(session, parsed, filename, writer.lines, now, import_id)
        n_matched, results = writer.finish(parsed.period_start, parsed.period_end)
        _journal_payouts(session, parsed, totals, imp.id, payout_accounts)
        return _conclude(session, imp, parsed, n_matched, results, now)


def used_currencies(session: Session, seen: set[str]) -> set[str]:
    """Which of `seen` some invoice (receivable) of this system is in: a bank statement in
    another currency is for an account this system does not keep."""
    if not seen:
        return set()
    return set(session.scalars(select(Receivable.currency).where(Receivable.currency.in_(seen)).distinct()))


def _already_imported(session: Session, sha256: str) -> ReconciliationReport | None:
    done = session.scalar(select(SettlementImport).where(SettlementImport.sha256 == sha256))
    return None if done is None else _report_of(session, done)


def _refuse_clash(session: Session, parsed: ParsedStatement) -> None:
    clash = session.scalar(
        select(SettlementImport).where(SettlementImport.statement_id == parsed.statement_id)
    )
    if clash is not None:
        raise ReconciliationError(
            f"statement {parsed.statement_id} was already imported (import {clash.id}) from a "
            "different file; a corrected statement needs its previous import reviewed first"
        )


def _new_import(session: Session, parsed: ParsedStatement, filename: str | None, line_count: int,
                now: datetime, import_id: str | None = None) -> SettlementImport:
    imp = SettlementImport(
        id=import_id or new_event_id("rec"),
        kind=parsed.kind,
        source=parsed.source,
        statement_id=parsed.statement_id,
        sha256=parsed.sha256,
        filename=filename,
        period_start=parsed.period_start,
        period_end=parsed.period_end,
        line_count=line_count,
        summary={},
        imported_at=now,
    )
    session.add(imp)
    session.flush()
    return imp


def _conclude(session: Session, imp: SettlementImport, parsed: ParsedStatement, n_matched: int,
              results: list[dict[str, Any]], now: datetime) -> ReconciliationReport:
    """Count the outcomes, publish each mismatch, and keep the counts with the import."""
    counts: dict[str, int] = defaultdict(int)
    if n_matched:
        counts["matched"] = n_matched
    mismatches: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for r in results:
        counts[r["status"]] += 1
        if r["status"] in MISMATCHES:
            m = _mismatch_view(r, parsed)
            mismatches.append(m)
            events.append({"id": new_event_id(), "type": "reconciliation.mismatch",
                           "customer_id": r.pop("_customer", None), "time": now, "properties": m})
    if events:
        session.execute(insert(OutboxEvent), events)
    imp.summary = {"counts": dict(counts), "lines": imp.line_count}
    session.flush()
    return ReconciliationReport(imp.id, imp.kind, imp.source, imp.statement_id, False, dict(counts), mismatches)


def _match_in_database(session: Session) -> bool:
    """PostgreSQL matches a settlement in the database; elsewhere (SQLite) Python matches it."""
    return session.get_bind().dialect.name == "postgresql"


def _mismatch_view(r: dict[str, Any], parsed: ParsedStatement) -> dict[str, Any]:
    def money(v: Decimal | None, currency: str | None) -> str | None:
        return None if v is None else str(v.quantize(quantum(currency or "XXX")))

    return {
        "import_id": r["import_id"], "source": parsed.source, "statement_id": parsed.statement_id,
        "kind": r["status"], "line": r["line_no"] or None, "entry_kind": r["kind"],
        "provider_reference": r["provider_ref"], "payment_reference": r["payment_reference"],
        "payment_id": r["payment_id"], "expected_amount": money(r["expected_amount"], r["expected_currency"]),
        "actual_amount": money(r["actual_amount"], r["actual_currency"]), "expected_currency": r["expected_currency"],
        "actual_currency": r["actual_currency"], "detail": r["detail"],
    }


def _report_of(session: Session, imp: SettlementImport) -> ReconciliationReport:
    rows = session.scalars(
        select(ReconciliationResult)
        .where(ReconciliationResult.import_id == imp.id, ReconciliationResult.status.in_(MISMATCHES))
        # File lines in file order, then the ledger records the file lacks, as first reported.
        .order_by(ReconciliationResult.line_no == 0, ReconciliationResult.line_no, ReconciliationResult.id)
    ).all()
    mismatches = [
        {"kind": r.status, "line": r.line_no or None, "provider_reference": r.provider_ref,
         "payment_reference": r.payment_reference, "payment_id": r.payment_id,
         "expected_amount": None if r.expected_amount is None
         else str(r.expected_amount.quantize(quantum(r.expected_currency or "XXX"))),
         "actual_amount": None if r.actual_amount is None
         else str(r.actual_amount.quantize(quantum(r.actual_currency or "XXX"))),
         "expected_currency": r.expected_currency, "actual_currency": r.actual_currency,
         "detail": r.detail}
        for r in rows
    ]
    return ReconciliationReport(imp.id, imp.kind, imp.source, imp.statement_id, True,
                                dict(imp.summary.get("counts", {})), mismatches)


def _result(import_id: str, line: StatementLine, status: str, *, ledger: _Ledger | None = None,
            expected: Decimal | None = None, expected_currency: str | None = None,
            detail: str | None = None) -> dict[str, Any]:
    """The outcome of a file's line (and the ledger record it names, if any)."""
    payment_id, customer = (ledger.id, ledger.customer_id) if ledger else (None, None)
    return {
        "import_id": import_id,
        "line_no": line.line_no,
        "status": status,
        "kind": line.kind,
        "provider_ref": line.provider_ref,
        "payment_reference": line.payment_reference,
        "payment_id": payment_id,
        "expected_amount": expected,
        "actual_amount": line.amount,
        "expected_currency": expected_currency,
        "actual_currency": line.currency,
        "fee": line.fee,
        "payout_id": line.payout_id,
        "detail": detail,
        "_customer": customer,
    }


def _missing_result(import_id: str, ledger: _Ledger, kind: str, expected: Decimal, detail: str) -> dict[str, Any]:
    """A ledger record the file lacks (no line of it)."""
    return {
        "import_id": import_id,
        "line_no": 0,
        "status": "missing_at_provider",
        "kind": kind,
        "provider_ref": ledger.provider_ref,
        "payment_reference": ledger.key,
        "payment_id": ledger.id,
        "expected_amount": expected,
        "actual_amount": None,
        "expected_currency": ledger.currency,
        "actual_currency": None,
        "fee": None,
        "payout_id": None,
        "detail": detail,
        "_customer": ledger.customer_id,
    }


def _compare(import_id: str, line: StatementLine, ledger: _Ledger, expected: Decimal) -> dict[str, Any]:
    if ledger.currency != line.currency:
        return _result(import_id, line, "currency_mismatch", ledger=ledger, expected=expected,
                       expected_currency=ledger.currency,
                       detail=f"ledger has {ledger.currency}, the file {line.currency}")
    if expected != line.amount:
        q = quantum(ledger.currency)
        return _result(import_id, line, "amount_mismatch", ledger=ledger, expected=expected,
                       expected_currency=ledger.currency,
                       detail=f"ledger has {expected.quantize(q)}, the file {line.amount.quantize(q)}")
    return _result(import_id, line, "matched", ledger=ledger, expected=expected,
                   expected_currency=ledger.currency)


def _by_values(session: Session, column: Any, values: Sequence[str], *conditions: Any) -> list[_Ledger]:
    """The ledger rows whose `column` is one of `values` (Core rows, not the ORM: a third of
    the cost; see bank.rows_where). The columns read are unique per provider, so the order of
    the rows does not matter."""
    return [_Ledger(*row) for row in rows_where(session, _LEDGER_COLUMNS[column.class_], column, values, *conditions)]


def _fetch(session: Session, stmt: Any) -> list[Any]:
    """All rows of a Core select. On PostgreSQL straight from the driver's cursor: a day's
    ledger is 100,000 rows, and SQLAlchemy's per-row result processing would cost as much as
    parsing the file. Only for selects of plain columns (strings, numerics)."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return list(conn.execute(stmt).all())
    compiled = stmt.compile(dialect=conn.dialect)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(str(compiled), compiled.params)
        return list(cur.fetchall())


# What matching reads of a payment or a refund (a _Ledger).
_LEDGER_COLUMNS: dict[Any, list[Any]] = {
    entity: [entity.id, entity.provider_ref, entity.idempotency_key, entity.amount, entity.currency,
             entity.status, entity.customer_id]
    for entity in (Payment, Refund)
}


def _match_settlement(session: Session, parsed: ParsedStatement,
                      import_id: str) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
    """(matched rows in _RESULT_COLUMNS order, every other outcome as a dict)."""
    in_window, payments, by_key = _payments_ledger(session, parsed)
    refunds_in_window, refunds = _refunds_ledger(session, parsed)
    results: list[dict[str, Any]] = []
    matched: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    for line in parsed.lines:
        if line.kind == "charge":
            hit = payments.get(line.provider_ref or "") or (
                by_key.get(line.payment_reference) if line.payment_reference else None
            )
            _match_charge(import_id, line, hit, seen, matched, results)
        else:
            _match_refund(import_id, line, refunds.get(line.provider_ref or ""), seen, results)
    results += _missing_at_provider(import_id, in_window, refunds_in_window, seen)
    return matched, results


_SETTLED_OK = ("succeeded", "refunded")


def _payments_ledger(session: Session, parsed: ParsedStatement) \
        -> tuple[list[_Ledger], dict[str, _Ledger], dict[str, _Ledger]]:
    """The provider's payments the file may name: (captured in its period, by provider
    reference, by idempotency key)."""
    provider = parsed.source
    # The period's ledger in one query (it is also what "missing at provider" needs) ...
    in_window = [_Ledger(*row) for row in _fetch(session, select(*_LEDGER_COLUMNS[Payment]).where(
        Payment.provider == provider,
        Payment.captured_at >= parsed.period_start,
        Payment.captured_at < parsed.period_end,
    ))]
    payments = {led.provider_ref: led for led in in_window if led.provider_ref}
    by_key = {led.key: led for led in in_window}
    _payments_outside(session, provider, [ln for ln in parsed.lines if ln.kind == "charge"], payments, by_key)
    return in_window, payments, by_key


def _payments_outside(session: Session, provider: str, charges: list[StatementLine],
                      payments: dict[str, _Ledger], by_key: dict[str, _Ledger]) -> None:
    """... then whatever the file names outside the period (captured near midnight, late
    settlement), added to `payments` and `by_key`."""
    missing_refs = [ln.provider_ref for ln in charges if ln.provider_ref and ln.provider_ref not in payments]
    for led in _by_values(session, Payment.provider_ref, missing_refs, Payment.provider == provider):
        payments[led.provider_ref or ""] = led
        by_key[led.key] = led
    missing_keys = [ln.payment_reference for ln in charges
                    if ln.payment_reference and ln.provider_ref not in payments
                    and ln.payment_reference not in by_key]
    by_key.update((led.key, led) for led in _by_values(session, Payment.idempotency_key, missing_keys,
                                                       Payment.provider == provider))


def _refunds_ledger(session: Session, parsed: ParsedStatement) -> tuple[list[_Ledger], dict[str, _Ledger]]:
    """The provider's succeeded refunds: (made in the file's period, by provider reference
    including those the file names outside the period)."""
    provider = parsed.source
    refunds_in_window = [_Ledger(*row) for row in session.connection().execute(
        select(*_LEDGER_COLUMNS[Refund]).where(
            Refund.provider == provider, Refund.status == "succeeded",
            Refund.created_at >= parsed.period_start, Refund.created_at < parsed.period_end,
        )
    )]
    refunds = {led.provider_ref or "": led for led in refunds_in_window}
    missing_refund_refs = [ln.provider_ref for ln in parsed.lines
                           if ln.kind == "refund" and ln.provider_ref and ln.provider_ref not in refunds]
    refunds.update((led.provider_ref or "", led)
                   for led in _by_values(session, Refund.provider_ref, missing_refund_refs, Refund.provider == provider))
    return refunds_in_window, refunds


def _match_charge(import_id: str, line: StatementLine, hit: _Ledger | None, seen: set[str],
                  matched: list[tuple[Any, ...]], results: list[dict[str, Any]]) -> None:
    if hit is None or hit.status not in _SETTLED_OK:
        detail = "no such payment in the ledger" if hit is None else f"the ledger has it {hit.status}"
        results.append(_result(import_id, line, "missing_in_ledger", ledger=hit, detail=detail))
        if hit is not None:
            seen.add(hit.id)
        return
    seen.add(hit.id)
    if hit.amount == line.amount and hit.currency == line.currency:  # the common case, lean
        matched.append((import_id, line.line_no, "matched", "charge", line.provider_ref,
                        line.payment_reference, hit.id, hit.amount, line.amount, hit.currency,
                        line.currency, line.fee, line.payout_id, None))
    else:
        results.append(_compare(import_id, line, hit, hit.amount))


def _match_refund(import_id: str, line: StatementLine, hit: _Ledger | None, seen: set[str],
                  results: list[dict[str, Any]]) -> None:
    if hit is None or hit.status != "succeeded":
        detail = "no such refund in the ledger" if hit is None else f"the ledger has it {hit.status}"
        results.append(_result(import_id, line, "missing_in_ledger", ledger=hit, detail=detail))
        return
    seen.add(hit.id)
    results.append(_compare(import_id, line, hit, -hit.amount))


def _missing_at_provider(import_id: str, in_window: list[_Ledger], refunds_in_window: list[_Ledger],
                         seen: set[str]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for led in in_window:
        if led.id not in seen and led.status in _SETTLED_OK:
            results.append(_missing_result(import_id, led, "charge", led.amount,
                                           "captured in the period, absent from the settlement"))
    for led in refunds_in_window:
        if led.id not in seen:
            results.append(_missing_result(import_id, led, "refund", -led.amount,
                                           "refunded in the period, absent from the settlement"))
    return results


def _payout_totals(lines: Iterable[StatementLine],
                   totals: dict[tuple[str, str], list[Decimal]] | None = None,
                   ) -> dict[tuple[str, str], list[Decimal]]:
    """[gross, fee, net] per (payout, currency), added to `totals`."""
    if totals is None:
        totals = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for line in lines:
        t = totals[(line.payout_id or "unpaid", line.currency)]
        t[0] += line.amount
        t[1] += line.fee
        t[2] += line.net
    return totals


def _journal_payouts(session: Session, parsed: ParsedStatement, totals: dict[tuple[str, str], list[Decimal]],
                     import_id: str, payout_accounts: Mapping[str, str] | None) -> None:
    """Dr the bank account the provider pays out to (the chart's `cash.payouts`: a settlement
    file does not say which; `cash:bank` when the chart does not either) and Dr provider_fees
    / Cr the provider's cash, per payout and currency."""
    bank = journal.bank_cash_account((payout_accounts or {}).get(parsed.source))
    for (payout, currency), (gross, fee, net) in sorted(totals.items()):
        clearing = journal.cash_account(parsed.source)
        postings = [debit_posting(journal.PROVIDER_FEES, fee), debit_posting(bank, net),
                    debit_posting(clearing, -gross)]
        journal.post_entry(
            session, f"payout:{import_id}:{payout}:{currency}", parsed.period_start, currency, postings,
            f"payout {payout} from {parsed.source}: fees and transfer to the bank", payout,
        )


_RESULT_COLUMNS = ("import_id", "line_no", "status", "kind", "provider_ref", "payment_reference", "payment_id",
                   "expected_amount", "actual_amount", "expected_currency", "actual_currency", "fee",
                   "payout_id", "detail")
_RESULT_ROW = itemgetter(*_RESULT_COLUMNS)


# COPY text format: backslash, tab, newline and carriage return are escaped; \N is NULL.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return _copy_text(value)
    return str(value)


def _copy_text(value: str | None) -> str:
    if value is None:
        return "\\N"
    # Nearly every reference is plain printable text: check with two C calls, not translate.
    return value if value.isprintable() and "\\" not in value else value.translate(_COPY_ESCAPES)


def _copy_lines(rows: list[tuple[Any, ...]]) -> str:
    """COPY text for result rows. Matched rows, all of one shape, take a single f-string:
    a fifth of the per-field path's cost at 100,000 lines. Two shapes: a settlement's (with
    its fee) and a bank file's (no fee, no payout, the expected amount and currency known)."""
    e = _copy_text
    return "".join(
        f"{r[0]}\t{r[1]}\tmatched\t{r[3]}\t{e(r[4])}\t{e(r[5])}\t{r[6]}\t{r[7]}\t{r[8]}\t{r[9]}\t"
        f"{r[10]}\t{r[11]}\t{e(r[12])}\t\\N\n"
        if r[2] == "matched" and r[13] is None and r[11] is not None and r[6] is not None
        else f"{r[0]}\t{r[1]}\tmatched\t{r[3]}\t{e(r[4])}\t{e(r[5])}\t{r[6]}\t{r[7]}\t{r[8]}\t{r[9]}\t"
             f"{r[10]}\t\\N\t\\N\t\\N\n"
        if (r[2] == "matched" and r[13] is None and r[11] is None and r[12] is None and r[6] is not None
            and r[7] is not None and r[9] is not None)
        else "\t".join([_copy_field(v) for v in r]) + "\n"
        for r in rows
    )


def _insert_results(session: Session, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        # COPY of preformatted text: a day's lines in one round trip, no per-value adaptation.
        conn = session.connection().connection.driver_connection
        cols = ", ".join(_RESULT_COLUMNS)
        with conn.cursor() as cur, cur.copy(  # type: ignore[union-attr]
            f"COPY {ReconciliationResult.__tablename__} ({cols}) FROM STDIN"
        ) as copy:
            for i in range(0, len(rows), 10_000):
                copy.write(_copy_lines(rows[i:i + 10_000]))
        return
    session.execute(insert(ReconciliationResult), [dict(zip(_RESULT_COLUMNS, row, strict=True)) for row in rows])
