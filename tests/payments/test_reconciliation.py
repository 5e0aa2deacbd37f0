"""Reconciliation of settlement CSVs (from the sandbox over HTTP) and camt.053 statements,
with every kind of mismatch, idempotent re-import, rejection of broken files, and the
accounting export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from engine.clock import TestClock
from engine.payments import (
    CollectableInvoice,
    PaymentService,
    ReconciliationError,
    StatementFormatError,
    add_payment_method,
    collect_invoice,
    customer_credit_balance,
    export_journal_csv,
    handle_invoice_finalized,
    invoice_payment_summary,
    open_receivable,
    reconcile_file,
    record_manual_payment,
    refund_payment,
)
from engine.payments.models import JournalLine, Payment, ReconciliationResult, SettlementImport
from engine.payments.sandbox import CARD_SUCCESS
from engine.store import Database, OutboxEvent, new_event_id
from tests.payments.camt import Entry, camt053
from tests.payments.conftest import API_KEY, Server, events, new_id


def count(db: Database, model: type) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def settlement_for(sandbox: Server, day: str, keys: list[str]) -> list[list[str]]:
    r = httpx.get(f"{sandbox.url}/v1/settlements/{day}", headers={"Authorization": f"Bearer {API_KEY}"})
    r.raise_for_status()
    rows = list(csv.reader(io.StringIO(r.text)))
    # The sandbox is shared by the whole test session: keep this test's lines.
    return [rows[0]] + [row for row in rows[1:] if any(row[4].startswith(k) for k in keys)]


def to_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def balanced(export: str) -> dict[str, tuple[Decimal, Decimal]]:
    per_entry: dict[str, tuple[Decimal, Decimal]] = {}
    for row in csv.DictReader(io.StringIO(export)):
        d, c = per_entry.get(row["entry_id"], (Decimal(0), Decimal(0)))
        per_entry[row["entry_id"]] = (d + Decimal(row["debit"]), c + Decimal(row["credit"]))
    assert per_entry, "empty export"
    for entry, (d, c) in per_entry.items():
        assert d == c, f"{entry}: {d} != {c}"
    return per_entry


def test_settlement_csv_every_mismatch_idempotent_and_export_balances(
        any_db: Database, service: PaymentService, sandbox: Server) -> None:
    db = any_db
    customer = new_id("cus")
    ids = [new_id("inv") for _ in range(4)]
    with db.session() as s:
        add_payment_method(s, customer, "card", CARD_SUCCESS, service=service)
    for i, invoice_id in enumerate(ids):
        envelope = {"id": new_event_id(), "type": "invoice.finalized", "customer_id": customer,
                    "properties": {"invoice_id": invoice_id, "amount_due": f"{100 + i}.00", "currency": "CHF",
                                   "lines": [{"plan": "pro", "amount": f"{90 + i}.00"}], "tax": "10.00"}}
        with db.session() as s:
            handle_invoice_finalized(s, envelope, service=service)
    with db.session() as s:
        first = s.scalar(select(Payment).where(Payment.invoice_id == ids[0]))
        assert first is not None and first.status == "succeeded"
        refund_payment(s, first.id, Decimal("25.00"), service=service)
    day = datetime.now(UTC).date().isoformat()
    rows = settlement_for(sandbox, day, ids)
    assert len(rows) == 1 + 4 + 1  # header, four charges, one refund
    clean = to_csv(rows)

    by_invoice = {row[4].split(":")[0]: row for row in rows[1:] if row[2] == "charge"}
    tampered = [rows[0]]
    for row in rows[1:]:
        inv = row[4].split(":")[0]
        if row[2] == "charge" and inv == ids[1]:
            continue  # the provider lost it: missing at provider
        if row[2] == "charge" and inv == ids[2]:
            gross = Decimal(row[6]) - Decimal("1.00")
            row = [*row[:6], str(gross), row[7], str(gross - Decimal(row[7])), row[9]]
        if row[2] == "charge" and inv == ids[3]:
            row = [*row[:5], "EUR", *row[6:]]
        tampered.append(row)
    ghost = list(by_invoice[ids[0]])
    ghost[3], ghost[4] = "sbp_ghost", "inv_unknown:1"
    tampered.append(ghost)  # settled by the provider, unknown to us: missing in ledger

    with db.session() as s:
        report = reconcile_file(s, to_csv(tampered), filename="settlement.csv", service=service)
    assert report.counts == {"matched": 2, "missing_at_provider": 1, "amount_mismatch": 1,
                             "currency_mismatch": 1, "missing_in_ledger": 1}
    kinds = {m["kind"]: m for m in report.mismatches}
    assert kinds["amount_mismatch"]["expected_amount"] == "102.00"
    assert kinds["amount_mismatch"]["actual_amount"] == "101.00"
    assert kinds["currency_mismatch"]["actual_currency"] == "EUR"
    assert kinds["missing_in_ledger"]["provider_reference"] == "sbp_ghost"
    published = events(db, "reconciliation.mismatch", import_id=report.import_id)
    assert sorted(e["kind"] for e in published) == sorted(kinds)
    results, outbox, journal_lines = count(db, ReconciliationResult), count(db, OutboxEvent), count(db, JournalLine)

    # The same file again changes nothing.
    with db.session() as s:
        again = reconcile_file(s, to_csv(tampered), service=service)
    assert again.already_imported and again.import_id == report.import_id
    assert again.counts == report.counts, again.counts
    assert sorted(m["kind"] for m in again.mismatches) == sorted(m["kind"] for m in report.mismatches)
    assert (count(db, ReconciliationResult), count(db, OutboxEvent), count(db, JournalLine)) == (
        results, outbox, journal_lines)
    # Another file for the same settlement day is refused, not merged.
    with pytest.raises(ReconciliationError, match="already imported"), db.session() as s:
        reconcile_file(s, clean, service=service)

    # The books: invoices, revenue per plan, tax, payments, the refund, and the payout's fees.
    out = io.StringIO()
    with db.session() as s:
        summary = export_journal_csv(s, datetime.now(UTC) - timedelta(days=2),
                                     datetime.now(UTC) + timedelta(days=2), out)
    per_entry = balanced(out.getvalue())
    assert summary.entries == len(per_entry)
    assert summary.debits == summary.credits
    accounts = {row["account"] for row in csv.DictReader(io.StringIO(out.getvalue()))}
    assert {"receivables", "revenue:pro", "tax_payable", "cash:sandbox", "refunds", "provider_fees",
            "cash:bank"} <= accounts


def test_clean_settlement_matches_everything(pdb: Database, service: PaymentService,
                                             sandbox: Server) -> None:
    customer = new_id("cus")
    ids = [new_id("inv") for _ in range(3)]
    with pdb.session() as s:
        add_payment_method(s, customer, "card", CARD_SUCCESS, service=service)
        for invoice_id in ids:
            collect_invoice(s, CollectableInvoice(invoice_id, customer, Decimal("10.00"), "CHF"),
                            service=service)
    rows = settlement_for(sandbox, datetime.now(UTC).date().isoformat(), ids)
    with pdb.session() as s:
        report = reconcile_file(s, to_csv(rows), service=service)
    assert report.counts == {"matched": 3} and not report.mismatches
    # Fees are the sandbox's card schedule: 2.9 % + 0.30, rounded half-up per charge.
    assert {row[7] for row in rows[1:]} == {"0.59"}


def test_broken_settlement_row_rejects_the_file_whole(pdb: Database, service: PaymentService) -> None:
    header = "settlement_date,payout_id,type,provider_reference,payment_reference,currency,gross,fee,net,created_at"
    good = "2026-01-15,po_1,charge,sbp_1,inv_1:1,CHF,10.00,0.59,9.41,2026-01-15T10:00:00+00:00"
    bad_rows = [
        "2026-01-15,po_1,charge,sbp_2,inv_2:1,CHF,10.00,0.59,9.40,2026-01-15T10:00:00+00:00",  # net wrong
        "2026-01-15,po_1,charge,sbp_3,inv_3:1,CHF,ten,0.59,9.41,2026-01-15T10:00:00+00:00",
        "2026-01-15,po_1,charge,sbp_4,inv_4:1,CHF,10.001,0,10.001,2026-01-15T10:00:00+00:00",
        "2026-01-15,po_1,charge,sbp_5,inv_5:1",
        "2026-01-16,po_1,charge,sbp_6,inv_6:1,CHF,10.00,0.59,9.41,2026-01-16T10:00:00+00:00",
        "2026-01-15,po_1,payout,sbp_7,inv_7:1,CHF,10.00,0.59,9.41,2026-01-15T10:00:00+00:00",
        "2026-01-15,po_1,charge,sbp_8,inv_8:1,USB,10.00,0.59,9.41,2026-01-15T10:00:00+00:00",
    ]
    data = "\n".join([header, good, *bad_rows]).encode()
    with pytest.raises(StatementFormatError) as err, pdb.session() as s:
        reconcile_file(s, data, filename="day.csv", service=service)
    messages = err.value.errors
    assert len(messages) == len(bad_rows)
    assert messages[0] == "day.csv:3: gross 10.00 - fee 0.59 != net 9.40"
    assert "day.csv:6: expected 10 fields, got 5" in messages
    assert any("differs from 2026-01-15" in m for m in messages)
    assert any("'USB' is not a known ISO 4217 code" in m for m in messages)
    with pytest.raises(StatementFormatError, match="header must be"), pdb.session() as s:
        reconcile_file(s, b"date,amount\n2026-01-15,10.00\n", service=service)
    assert count(pdb, SettlementImport) == 0 and count(pdb, ReconciliationResult) == 0


# --- camt.053 ------------------------------------------------------------------------------------


@pytest.fixture
def bank_service() -> PaymentService:
    return PaymentService([], TestClock(datetime(2026, 1, 15, 9, tzinfo=UTC)))


def test_camt053_every_mismatch_and_idempotent(db: Database, bank_service: PaymentService) -> None:
    svc = bank_service
    customer = new_id("cus")
    with db.session() as s:
        add_payment_method(s, customer, "bank_transfer", provider="bank", service=svc)
        recs = {}
        for name, amount, currency in [("exact", "100.00", "CHF"), ("partial", "50.00", "CHF"),
                                       ("over", "80.00", "CHF"), ("eur", "20.00", "EUR"),
                                       ("admin", "30.00", "CHF"), ("lost", "40.00", "CHF")]:
            inv = CollectableInvoice(new_id("inv"), customer, Decimal(amount), currency)
            result = collect_invoice(s, inv, service=svc)
            assert result.status == "awaiting_transfer" and result.payment_reference
            recs[name] = (inv.invoice_id, result.payment_reference)
        # The admin saw two transfers on the bank's website and recorded them by hand: one is
        # on the statement, the other the bank never booked.
        for name in ("admin", "lost"):
            record_manual_payment(
                s, customer_id=customer, amount=Decimal("30.00" if name == "admin" else "40.00"),
                currency="CHF", invoice_id=recs[name][0], method_type="bank_transfer",
                reference=recs[name][1], received_at=datetime(2026, 1, 15, 8, tzinfo=UTC), service=svc)
    spaced = " ".join(recs["exact"][1][i:i + 4] for i in range(0, len(recs["exact"][1]), 4))
    statement = camt053([
        Entry("100.00", unstructured=f"Invoice payment {spaced} thank you"),
        Entry("30.00", reference=recs["partial"][1]),
        Entry("90.00", reference=recs["over"][1]),
        Entry("20.00", "CHF", reference=recs["eur"][1]),
        Entry("30.00", reference=recs["admin"][1]),
        Entry("12.00", reference="RF18539007547034"),  # valid, but no invoice of ours
        Entry("5.00", indicator="DBIT"),  # bank charges: ours, not a customer's payment
        Entry("7.00", reference=recs["partial"][1], status="PDNG"),  # not final yet
    ])
    with db.session() as s:
        report = reconcile_file(s, statement, filename="camt.xml", service=svc)
    assert report.counts == {"matched": 2, "amount_mismatch": 2, "currency_mismatch": 1,
                             "missing_in_ledger": 1, "missing_at_provider": 1}
    details = {m["kind"] + ":" + (m["payment_reference"] or ""): m for m in report.mismatches}
    assert "partial payment" in details[f"amount_mismatch:{recs['partial'][1]}"]["detail"]
    assert "overpayment" in details[f"amount_mismatch:{recs['over'][1]}"]["detail"]
    assert details[f"currency_mismatch:{recs['eur'][1]}"]["expected_currency"] == "EUR"
    assert details["missing_in_ledger:RF18539007547034"]["actual_amount"] == "12.00"
    lost = [m for m in report.mismatches if m["kind"] == "missing_at_provider"]
    assert len(lost) == 1 and lost[0]["expected_amount"] == "40.00" and lost[0]["payment_id"]
    with db.session() as s:
        def status(name: str) -> tuple[str, str]:
            summary = invoice_payment_summary(s, recs[name][0])
            assert summary is not None
            return summary["status"], summary["remaining"]

        assert status("exact") == ("paid", "0.00")
        assert status("partial") == ("open", "20.00")
        assert status("over") == ("paid", "0.00")
        assert status("eur") == ("open", "20.00")  # a CHF transfer is never applied to a EUR invoice
        assert customer_credit_balance(s, customer, "CHF") == Decimal("10.00")
    assert len(events(db, "reconciliation.mismatch", import_id=report.import_id)) == 5
    paid_by_bank = [e for e in events(db, "payment.succeeded") if e["provider"] == "bank"]
    assert len(paid_by_bank) == 3
    snapshot = (count(db, ReconciliationResult), count(db, OutboxEvent), count(db, Payment))
    with db.session() as s:
        again = reconcile_file(s, statement, service=svc)
    assert again.already_imported and again.counts == report.counts
    assert (count(db, ReconciliationResult), count(db, OutboxEvent), count(db, Payment)) == snapshot
    # A later statement repeating an entry (overlapping periods) matches the recorded payment.
    overlap = camt053([Entry("100.00", reference=recs["exact"][1], acct_ref="STMT-1-1")], stmt_id="STMT-2",
                      start="2026-01-15T12:00:00Z", end="2026-01-16T12:00:00Z")
    with db.session() as s:
        assert reconcile_file(s, overlap, service=svc).counts == {"matched": 1}
    assert count(db, Payment) == snapshot[2]
    out = io.StringIO()
    with db.session() as s:
        export_journal_csv(s, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC), out)
    balanced(out.getvalue())


def test_camt_of_the_wrong_schema_or_unsafe_xml_is_rejected(db: Database, bank_service: PaymentService) -> None:
    svc = bank_service
    with db.session() as s:
        open_receivable(s, CollectableInvoice("inv_w", "cus_w", Decimal("10.00"), "CHF"), service=svc)
    wrong = camt053([Entry("10.00", reference="RF18539007547034")], version="052.001.08")
    with pytest.raises(StatementFormatError, match=r"statement:2: Document: a camt.052.001.08 message is not a bank"), \
            db.session() as s:
        reconcile_file(s, wrong, service=svc)
    pain = b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>'
    with pytest.raises(StatementFormatError, match="a pain.001.001.09 message is not a bank statement"), db.session() as s:
        reconcile_file(s, pain, service=svc)
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&b;</Document>')
    with pytest.raises(StatementFormatError, match=r"statement:1: a DTD \(<!DOCTYPE\) is not accepted"), db.session() as s:
        reconcile_file(s, bomb, service=svc)
    broken = camt053([Entry("10.00", reference="RF18539007547034"), Entry("ten", currency="CHF")])
    # The file, the line of the element and its path: Amt of the second entry, on line 25.
    with pytest.raises(StatementFormatError, match=r"statement:25: Stmt\[1\]/Ntry\[2\]/Amt: 'ten' is not"), \
            db.session() as s:
        reconcile_file(s, broken, service=svc)
    assert count(db, SettlementImport) == 0 and count(db, Payment) == 0
