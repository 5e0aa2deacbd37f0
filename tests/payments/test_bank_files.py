"""Every real bank file of tests/payments/bank_files (sources in its README): the lines parsed
equal a count made here independently with xml.etree, the files whose references we set up
invoices for are matched as expected, and a second import changes nothing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.clock import TestClock
from engine.payments import (
    CollectableInvoice,
    PaymentService,
    StatementFormatError,
    open_receivable,
    reconcile_file,
)
from engine.payments.bank import remember_invoice
from engine.payments.models import BankLine, JournalLine, Payment, ReconciliationResult, SettlementImport
from engine.store import Database, OutboxEvent

FILES = Path(__file__).with_name("bank_files")
CORPUS = sorted(FILES.glob("*.xml"))
BAD = sorted((FILES / "bad").glob("*.xml"))


def independent_count(path: Path) -> tuple[int, int]:
    """(lines, Ntry elements): an entry is one line, or one per TxDtls when it holds several
    and each says its amount (Amt or AmtDtls/TxAmt/Amt) in the entry's currency."""
    root = ET.parse(path).getroot()
    ns = root.tag[1:].split("}")[0]

    def q(tag: str) -> str:
        return f"{{{ns}}}{tag}"

    lines = entries = 0
    for ntry in root.iter(q("Ntry")):
        entries += 1
        ccy = ntry.find(q("Amt")).get("Ccy")  # type: ignore[union-attr]
        txs = list(ntry.iter(q("TxDtls")))
        own = 0
        for tx in txs:
            amt = tx.find(q("Amt"))
            if amt is None:
                amt = tx.find(f"{q('AmtDtls')}/{q('TxAmt')}/{q('Amt')}")
            own += amt is not None and amt.get("Ccy") == ccy
        lines += len(txs) if len(txs) > 1 and own == len(txs) else 1
    return lines, entries


def count(db: Database, model: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def bank_db(tmp_path: Path) -> Iterator[tuple[Database, PaymentService]]:
    from datetime import UTC, datetime

    db = Database(f"sqlite:///{tmp_path}/bank.db")
    db.migrate()
    svc = PaymentService([], TestClock(datetime(2026, 1, 1, tzinfo=UTC)))
    # This company invoices in the currencies of the corpus (a file in another one is refused).
    with db.session() as s:
        for cur in ("CHF", "EUR", "SEK"):
            open_receivable(s, CollectableInvoice(f"in_seed_{cur}", "cus_seed", Decimal(1), cur),
                            collection_method="bank_transfer", service=svc)
    yield db, svc
    db.dispose()


def invoice(db: Database, svc: PaymentService, invoice_id: str, amount: str, currency: str,
            number: str | None = None) -> None:
    with db.session() as s:
        open_receivable(s, CollectableInvoice(invoice_id, f"cus_{invoice_id}", Decimal(amount), currency),
                        collection_method="bank_transfer", service=svc)
        remember_invoice(s, invoice_id, number)


def state(db: Database) -> tuple[int, ...]:
    return tuple(count(db, m) for m in (SettlementImport, BankLine, Payment, JournalLine,
                                        ReconciliationResult, OutboxEvent))


@pytest.mark.parametrize("path", CORPUS, ids=[p.name[:70] for p in CORPUS])
def test_every_real_file_parses_to_its_lines_and_a_reimport_changes_nothing(
        path: Path, bank_db: tuple[Database, PaymentService]) -> None:
    db, svc = bank_db
    data = path.read_bytes()
    with db.session() as s:
        report = reconcile_file(s, data, filename=path.name, service=svc)
    lines, entries = independent_count(path)
    assert lines >= entries
    with db.session() as s:
        imp = s.get(SettlementImport, report.import_id)
        assert imp is not None and imp.line_count == lines
        assert imp.kind == ("camt054" if "BkToCstmrDbtCdtNtfctn" in data.decode() else "camt053")
    assert count(db, BankLine) == lines
    # Nothing was set up for these references: no payment is recorded from a guess.
    assert count(db, Payment) == 0
    before = state(db)
    with db.session() as s:
        again = reconcile_file(s, data, filename=path.name, service=svc)
    assert again.already_imported and again.import_id == report.import_id
    assert state(db) == before


def test_the_corpus_covers_what_real_banks_send() -> None:
    text = {p.name: p.read_text(encoding="utf-8") for p in CORPUS}
    versions = {v for t in text.values() for v in ("053.001.02", "053.001.03", "053.001.04", "053.001.08",
                                                    "054.001.02", "054.001.04", "054.001.08") if f"camt.{v}" in t}
    assert versions == {"053.001.02", "053.001.03", "053.001.04", "053.001.08", "054.001.02", "054.001.04",
                        "054.001.08"}
    assert sum(independent_count(p)[0] > independent_count(p)[1] for p in CORPUS) >= 5  # batches
    assert any("<RvslInd>true</RvslInd>" in t for t in text.values())
    assert any("<RtrInf>" in t for t in text.values())
    assert any("<Chrgs>" in t for t in text.values())
    assert any("<FrToDt>" not in t and "<Ntry>" in t for t in text.values())


def test_the_3483_batch_pays_each_invoice_and_the_unreadable_reference_waits_with_a_suggestion(
        bank_db: tuple[Database, PaymentService]) -> None:
    """OCA's camt.053.001.04: one Ntry of 3,483.00 holding two TxDtls with ISR references. The
    second's reference is valid and names its invoice; the first's check digit is wrong, so it
    is not trusted: it waits for a person, who is offered the invoice of the same amount."""
    db, svc = bank_db
    invoice(db, svc, "in_a", "2187.00", "CHF", number="30238829200001111111111111")
    invoice(db, svc, "in_b", "1296.00", "CHF", number="30238829200002222222222222")
    with db.session() as s:
        report = reconcile_file(s, (FILES / "oca__test-camt053-txdtls.xml").read_bytes(), service=svc)
    assert report.counts == {"matched": 1, "missing_in_ledger": 1}
    with db.session() as s:
        paid = {(p.invoice_id, p.amount) for p in s.scalars(select(Payment))}
        assert paid == {("in_b", Decimal("1296.00"))}
        from engine.payments.bank import list_lines

        (open_line,) = list_lines(s)
    assert open_line["amount"] == "2187.00" and open_line["position"] == "Stmt[1]/Ntry[1]/TxDtls[1]"
    first = open_line["suggestions"][0]
    assert first["invoice_id"] == "in_a"
    assert "same amount" in first["reasons"] and any(r.startswith("similar reference") for r in first["reasons"])


def test_swiss_qr_references_and_an_invoice_number_in_free_text_find_their_invoices(
        bank_db: tuple[Database, PaymentService]) -> None:
    db, svc = bank_db
    # dvbern's camt.054.001.08 (2019 guidelines): a batch of two QR-referenced credits.
    invoice(db, svc, "in_q1", "778.29", "CHF", number="53911542977382531197147745")
    invoice(db, svc, "in_q2", "913.93", "CHF", number="66243776544774647817974471")
    # dvbern's PostFinance month: "Mitteilung 132" / "Mitteilung 131" in Ustrd.
    invoice(db, svc, "in_132", "15.00", "CHF", number="132")
    invoice(db, svc, "in_131", "10.00", "CHF", number="131")  # 9.00 was paid: a partial payment
    with db.session() as s:
        qr = reconcile_file(s, (FILES / "dvbern__200519_camt.054_P_CH2909000000250094239_1111091335_0_"
                                         "2020061900081727_v2019.xml").read_bytes(), service=svc)
        month = reconcile_file(s, (FILES / "dvbern__camt.053_P_CH0309000000250090342_380000000_0_"
                                            "2016053100163801.xml").read_bytes(), service=svc)
    assert qr.counts == {"matched": 2}
    assert month.counts["matched"] == 1 and month.counts["amount_mismatch"] == 1
    assert month.counts["reversal"] == 2  # two debits with RvslInd true wait for a person
    with db.session() as s:
        paid = {p.invoice_id: p.amount for p in s.scalars(select(Payment))}
        assert paid == {"in_q1": Decimal("778.29"), "in_q2": Decimal("913.93"), "in_132": Decimal("15.00"),
                        "in_131": Decimal("9.00")}
        details = {r.payment_reference or r.provider_ref: r.detail for r in s.scalars(
            select(ReconciliationResult).where(ReconciliationResult.import_id == month.import_id,
                                               ReconciliationResult.payment_id.is_not(None)))}
    assert "matched by invoice number in the text" in details.values()
    assert any(d and d.startswith("partial payment of invoice in_131") for d in details.values())


def test_the_same_entry_in_a_notification_then_the_statement_is_applied_once(
        bank_db: tuple[Database, PaymentService]) -> None:
    """PostFinance sent the ESR batch as a camt.054 on the 27th and again in the month's
    camt.053: its eight credits are one set of bank lines, never two."""
    db, svc = bank_db
    with db.session() as s:
        reconcile_file(s, (FILES / "dvbern__camt.054-ES_P_CH0309000000250090342_38000000_0_2016052723011813.xml")
                       .read_bytes(), service=svc)
    notified = count(db, BankLine)
    assert notified == 8
    with db.session() as s:
        reconcile_file(s, (FILES / "dvbern__camt.053_P_CH0309000000250090342_380000000_0_2016053100163801.xml")
                       .read_bytes(), service=svc)
        identities = list(s.scalars(select(BankLine.identity)))
    assert len(identities) == len(set(identities)) == independent_count(
        FILES / "dvbern__camt.053_P_CH0309000000250090342_380000000_0_2016053100163801.xml")[0]


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_real_files_are_refused_whole(path: Path, bank_db: tuple[Database, PaymentService]) -> None:
    db, svc = bank_db
    before = state(db)
    with pytest.raises(StatementFormatError) as err, db.session() as s:
        reconcile_file(s, path.read_bytes(), filename=path.name, service=svc)
    first = err.value.errors[0]
    assert first.startswith(f"{path.name}:") and first.split(":")[1].isdigit()  # file:line:
    assert state(db) == before
