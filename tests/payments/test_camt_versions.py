"""camt versions no public sample was found for (.05, .06, .07), camt.054 built the same way,
statements without a period, and entries with no reference at all: what a re-import and a
second file see."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine.clock import TestClock
from engine.payments import CollectableInvoice, PaymentService, open_receivable, parse_camt, reconcile_file
from engine.payments.models import BankLine, Payment
from engine.payments.references import invoice_reference
from engine.store import Database
from tests.payments.camt import Entry, camt053


@pytest.mark.parametrize("version", ["053.001.05", "053.001.06", "053.001.07", "054.001.05", "054.001.07"])
def test_every_version_pays_its_invoice(db: Database, version: str) -> None:
    svc = PaymentService([], TestClock(datetime(2026, 1, 20, tzinfo=UTC)))
    with db.session() as s:
        open_receivable(s, CollectableInvoice("in_v", "cus_v", Decimal("42.00"), "CHF"),
                        collection_method="bank_transfer", service=svc)
    data = camt053([Entry("42.00", reference=invoice_reference("in_v"))], version=version)
    if version.startswith("054"):
        data = (data.replace(b"BkToCstmrStmt>", b"BkToCstmrDbtCdtNtfctn>").replace(b"<Stmt>", b"<Ntfctn>")
                .replace(b"</Stmt>", b"</Ntfctn>"))
    with db.session() as s:
        report = reconcile_file(s, data, service=svc)
    assert report.kind == f"camt{version[:3]}" and report.counts == {"matched": 1}
    with db.session() as s:
        assert [(p.invoice_id, p.amount) for p in s.scalars(select(Payment))] == [("in_v", Decimal("42.00"))]


NO_REFS = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{v}">{nl}<BkToCstmrStmt>{nl}<GrpHdr><MsgId>M</MsgId>
<CreDtTm>2026-01-16T06:00:00</CreDtTm></GrpHdr>{nl}<Stmt><Id>{sid}</Id><Acct><Id><IBAN>CH93</IBAN></Id></Acct>
{entries}</Stmt></BkToCstmrStmt></Document>"""
ENTRY = """  <Ntry>{nl}    <Amt Ccy="CHF">{amt}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>{day}</Dt></BookgDt><NtryDtls><TxDtls><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls>
  </Ntry>
"""


def file(sid: str, entries: list[tuple[str, str, str]], *, v: str = "02", nl: str = "") -> bytes:
    body = "".join(ENTRY.format(amt=a, day=d, text=t, nl=nl) for a, d, t in entries)
    return NO_REFS.format(v=v, sid=sid, entries=body, nl=nl).encode()


def test_entries_without_references_keep_their_identity_across_files_and_layouts() -> None:
    twice = [("10.00", "2026-01-15", "thanks"), ("10.00", "2026-01-15", "thanks"), ("7.50", "2026-01-15", "x")]
    a = parse_camt(file("S-1", twice))
    b = parse_camt(file("S-2", twice, v="08", nl="\n      "))  # another version, another layout
    ids = [ln.provider_ref for ln in a.lines]
    assert ids == [ln.provider_ref for ln in b.lines]
    assert len(set(ids)) == 3 and ids[1] == f"{ids[0]}#2" and all(i and i.startswith("h:") for i in ids)
    other = parse_camt(file("S-3", [("10.00", "2026-01-15", "thanks!")]))
    assert other.lines[0].provider_ref not in ids


def test_a_statement_without_a_period_covers_its_booking_days_whole() -> None:
    parsed = parse_camt(file("S-1", [("1.00", "2026-01-14", "a"), ("2.00", "2026-01-15", "b")]))
    assert parsed.period_start == datetime(2026, 1, 14, tzinfo=UTC)
    assert parsed.period_end == datetime(2026, 1, 16, tzinfo=UTC)  # the 15th up to its end


def test_the_same_unreferenced_entries_in_a_second_statement_are_not_applied_twice(db: Database) -> None:
    svc = PaymentService([], TestClock(datetime(2026, 1, 20, tzinfo=UTC)))
    with db.session() as s:
        open_receivable(s, CollectableInvoice("in_n", "cus_n", Decimal("10.00"), "CHF"),
                        collection_method="bank_transfer", service=svc)
    entries = [("10.00", "2026-01-15", "invoice in_n")]
    with db.session() as s:
        first = reconcile_file(s, file("S-1", entries), service=svc)
    with db.session() as s:
        second = reconcile_file(s, file("S-2", entries, nl="\n"), service=svc)
    assert first.counts == {"missing_in_ledger": 1}  # "in_n" is not an invoice number
    assert second.counts == {}  # the line is known: it stays open once, not twice
    with db.session() as s:
        assert len(s.scalars(select(BankLine)).all()) == 1
