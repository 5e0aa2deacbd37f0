"""Bank reconciliation as an operator does it, over HTTP: import a real bank file, see what
was not matched with suggestions, confirm or split it, and find every decision recorded with
the API key that made it and why. Bad files are 422s naming the file, line and element, with
nothing imported."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engine.api import create_app
from engine.api.keys import create_key
from engine.config import Settings
from engine.payments import CollectableInvoice, open_receivable
from engine.payments.bank import remember_invoice
from engine.payments.models import BankLine, JournalLine, Payment, Receivable, SettlementImport
from engine.system import System
from tests.api.conftest import keyed_system
from tests.payments.camt import Entry, camt053

FILES = Path(__file__).with_name("bank_files")
BATCH = FILES / "oca__test-camt053-txdtls.xml"


@dataclass
class Api:
    system: System
    client: TestClient
    admin: str

    def upload(self, data: bytes, filename: str = "statement.xml", key: str | None = None) -> Any:
        headers = {"Content-Type": "application/xml"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return self.client.post(f"/v1/reconciliation/imports?filename={filename}", content=data, headers=headers)

    def invoice(self, invoice_id: str, amount: str, currency: str = "CHF", number: str | None = None) -> None:
        svc = self.system.api_context().payments.service_or_offline(self.system.clock)
        with self.system.db.session() as s:
            open_receivable(s, CollectableInvoice(invoice_id, f"cus_{invoice_id}", Decimal(amount), currency),
                            collection_method="bank_transfer", service=svc)
            remember_invoice(s, invoice_id, number)

    def count(self, model: Any) -> int:
        with self.system.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)

    def remaining(self, invoice_id: str) -> Decimal:
        with self.system.db.session() as s:
            rec = s.get(Receivable, invoice_id)
            assert rec is not None
            return rec.remaining


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/rec.db", test_clock="2026-11-01T09:00:00Z",
                        access_denial_buffer_ms=0)
    system, admin, _product = keyed_system(settings)
    with TestClient(create_app(system.api_context()), headers={"Authorization": f"Bearer {admin}"}) as client:
        yield Api(system, client, admin)
    system.db.dispose()


def key_id_of(api: Api, key: str) -> str:
    from engine.api.keys import KeyVerifier

    found = KeyVerifier(api.system.db).verify(key)
    assert found is not None
    return found.key_id


def test_an_operator_finishes_the_batch_the_bank_sent_and_each_decision_says_who_and_why(api: Api) -> None:
    api.invoice("in_a", "2187.00", number="30238829200001111111111111")
    api.invoice("in_b", "1296.00", number="30238829200002222222222222")
    api.invoice("in_c", "1000.00")
    api.invoice("in_d", "187.00")
    r = api.upload(BATCH.read_bytes(), "test-camt053-txdtls.xml")
    assert r.status_code == 201, r.text
    assert r.json()["counts"] == {"matched": 1, "missing_in_ledger": 1}
    assert api.remaining("in_b") == 0

    items = api.client.get("/v1/reconciliation/lines").json()["items"]
    assert [(i["amount"], i["status"], i["outcome"]) for i in items] == [("2187.00", "open", "missing_in_ledger")]
    line = items[0]
    assert line["suggestions"][0]["invoice_id"] == "in_a"
    assert "same amount" in line["suggestions"][0]["reasons"]

    # A split whose parts do not add up is refused, naming the field; nothing is written.
    bad = api.client.post(f"/v1/reconciliation/lines/{line['id']}/split", json={
        "allocations": [{"invoice_id": "in_c", "amount": "1000.00"}, {"invoice_id": "in_d", "amount": "100.00"}],
        "reason": "customer email of 23 March"})
    assert bad.status_code == 422 and bad.json()["field"] == "allocations"
    no_reason = api.client.post(f"/v1/reconciliation/lines/{line['id']}/confirm", json={"invoice_id": "in_a",
                                                                                         "reason": ""})
    assert no_reason.status_code == 422
    payments_before = api.count(Payment)
    # The operator's own key (another admin) splits it: 1,000.00 + 187.00 + 1,000.00 of in_a.
    _, other = _new_admin(api)
    r = api.client.post(f"/v1/reconciliation/lines/{line['id']}/split", headers={"Authorization": f"Bearer {other}"},
                        json={"allocations": [{"invoice_id": "in_c", "amount": "1000.00"},
                                              {"invoice_id": "in_d", "amount": "187.00"},
                                              {"invoice_id": "in_a", "amount": "1000.00"}],
                              "reason": "the customer paid three invoices with one transfer (email 23 March)"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved"
    assert api.count(Payment) == payments_before + 3
    assert (api.remaining("in_c"), api.remaining("in_d"), api.remaining("in_a")) == (0, 0, Decimal("1187.00"))

    again = api.client.post(f"/v1/reconciliation/lines/{line['id']}/confirm",
                            json={"invoice_id": "in_a", "reason": "twice"})
    assert again.status_code == 409 and again.json()["field"] == "line_id"
    assert api.count(Payment) == payments_before + 3

    seen = api.client.get(f"/v1/reconciliation/lines/{line['id']}").json()
    (decision,) = seen["decisions"]
    assert decision["actor"] == f"api_key:{key_id_of(api, other)}"
    assert decision["actor"] != f"api_key:{key_id_of(api, api.admin)}"
    assert decision["reason"] == "the customer paid three invoices with one transfer (email 23 March)"
    assert [(a["invoice_id"], a["amount"]) for a in decision["allocations"]] == [
        ("in_c", "1000.00"), ("in_d", "187.00"), ("in_a", "1000.00")]
    assert api.client.get("/v1/reconciliation/lines").json()["items"] == []


def _new_admin(api: Api) -> tuple[str, str]:
    from datetime import UTC, datetime

    with api.system.db.session() as s:
        return create_key(s, "admin", now=datetime(2026, 11, 1, tzinfo=UTC), name="operator")


def test_confirm_to_one_invoice_with_a_typo_in_the_reference_and_dismiss_a_reversal(api: Api) -> None:
    api.invoice("in_typo", "120.00")
    data = camt053([
        Entry("120.00", unstructured="Invoice in_typ0 thank you", acct_ref="T-1"),
        Entry("50.00", indicator="DBIT", acct_ref="T-2"),
    ]).replace(b"<AcctSvcrRef>T-2</AcctSvcrRef>", b"<AcctSvcrRef>T-2</AcctSvcrRef>")
    data = data.replace(b"<CdtDbtInd>DBIT</CdtDbtInd>", b"<CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd>")
    r = api.upload(data)
    assert r.status_code == 201, r.text
    assert r.json()["counts"] == {"missing_in_ledger": 1, "reversal": 1}
    items = {i["outcome"]: i for i in api.client.get("/v1/reconciliation/lines").json()["items"]}
    credit, reversal = items["missing_in_ledger"], items["reversal"]
    assert credit["suggestions"][0]["invoice_id"] == "in_typo"
    assert reversal["suggestions"] == [] and reversal["details"] == {"reversal": True}
    ok = api.client.post(f"/v1/reconciliation/lines/{credit['id']}/confirm",
                         json={"invoice_id": "in_typo", "reason": "reference mistyped by the customer"})
    assert ok.status_code == 200, ok.text
    assert api.remaining("in_typo") == 0
    wrong = api.client.post(f"/v1/reconciliation/lines/{reversal['id']}/confirm",
                            json={"invoice_id": "in_typo", "reason": "x"})
    assert wrong.status_code == 422 and wrong.json()["field"] == "line_id"
    gone = api.client.post(f"/v1/reconciliation/lines/{reversal['id']}/dismiss",
                           json={"reason": "our refund of 50.00 came back; refunded again by cheque"})
    assert gone.status_code == 200 and gone.json()["decision"]["action"] == "dismiss"
    unknown = api.client.post("/v1/reconciliation/lines/bl_nope/dismiss", json={"reason": "x"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "line_id"


def test_charges_the_bank_kept_are_journalled_and_the_invoice_is_paid_in_full(api: Api) -> None:
    api.invoice("in_fee", "100.00")
    from engine.payments.references import invoice_reference

    data = camt053([Entry("97.50", reference=invoice_reference("in_fee"), acct_ref="F-1")]).replace(
        b"</RmtInf>", b"</RmtInf><Chrgs><TtlChrgsAndTaxAmt Ccy=\"CHF\">2.50</TtlChrgsAndTaxAmt><Rcrd>"
                      b"<Amt Ccy=\"CHF\">2.50</Amt><CdtDbtInd>DBIT</CdtDbtInd><ChrgInclInd>true</ChrgInclInd>"
                      b"</Rcrd></Chrgs>")
    r = api.upload(data)
    assert r.status_code == 201, r.text
    assert r.json()["counts"] == {"matched": 1}
    assert api.remaining("in_fee") == 0
    with api.system.db.session() as s:
        fees = [(j.account, j.debit, j.credit) for j in s.scalars(select(JournalLine).where(
            JournalLine.entry_id.like("bankfee:%")).order_by(JournalLine.line_no))]
    assert fees == [("bank_charges", Decimal("2.50"), Decimal(0)), ("cash:bank:CH9300762011623852957", Decimal(0), Decimal("2.50"))]


@pytest.mark.parametrize(("data", "where"), [
    (BATCH.read_bytes()[:2500], "upload.xml:"),  # truncated
    (BATCH.read_bytes().replace(b"<Amt Ccy=\"CHF\">2187.00</Amt>", b"<Amt Ccy=\"CHF\">21,87</Amt>"),
     "upload.xml:87: Stmt[1]/Ntry[1]/TxDtls[1]/Amt: '21,87' is not a decimal amount"),
    (b'<?xml version="1.0"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">'
     b"<CstmrCdtTrfInitn/></Document>", "upload.xml:2: Document: a pain.001.001.09 message is not a bank statement"),
    (camt053([Entry("10.00", currency="JPY")]).replace(b'Ccy="JPY">10.00', b'Ccy="JPY">10'),
     "upload.xml:12: JPY: no account or invoice of this system uses JPY"),
])
def test_bad_files_are_422_naming_file_line_and_element_and_nothing_is_imported(
        api: Api, data: bytes, where: str) -> None:
    api.invoice("in_x", "10.00")
    before = (api.count(SettlementImport), api.count(BankLine), api.count(Payment))
    r = api.upload(data, "upload.xml")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == "file" and body["detail"].startswith(where), body["detail"]
    assert (api.count(SettlementImport), api.count(BankLine), api.count(Payment)) == before


def test_a_reimport_over_http_is_a_200_that_changes_nothing(api: Api) -> None:
    api.invoice("in_chf", "5.00")  # the system invoices in CHF, the statement's currency
    first = api.upload(BATCH.read_bytes())
    assert first.status_code == 201
    lines = api.count(BankLine)
    again = api.upload(BATCH.read_bytes())
    assert again.status_code == 200 and again.json()["already_imported"] is True
    assert api.count(BankLine) == lines == 2
    product = api.client.get("/v1/reconciliation/lines", headers={"Authorization": "Bearer nope"})
    assert product.status_code == 401
