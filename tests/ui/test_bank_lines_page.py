"""The console's Bank lines page: what a real bank file left open (OCA's 3,483.00 batch, no QR
numbers known, so both of its transfers are open) is listed with suggestions; an editor confirms
one with a reason, recorded as console:<user>; a viewer cannot decide; a decision without a
reason is refused and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from engine.clock import SystemClock
from engine.payments import CollectableInvoice, PaymentService, open_receivable, reconcile_file
from engine.payments.models import ReconciliationDecision
from engine.store import Database
from tests.ui.conftest import page

BATCH = Path(__file__).resolve().parents[1] / "payments" / "bank_files" / "oca__test-camt053-txdtls.xml"


def seed(db: Database) -> None:
    service = PaymentService((), SystemClock())
    with db.session() as s:
        for inv, amount in (("in_a", "2187.00"), ("in_b", "1296.00")):
            open_receivable(s, CollectableInvoice(inv, f"cus_{inv}", Decimal(amount), "CHF"),
                            collection_method="bank_transfer", service=service)
    with db.session() as s:
        reconcile_file(s, BATCH.read_bytes(), provider="bank", filename=BATCH.name, service=service)


def test_an_editor_confirms_an_open_line_with_a_reason(console_db: Database,
                                                       app: Callable[[str | None], AppTest]) -> None:
    seed(console_db)
    viewer = page(app("viewer"), "Bank lines")
    assert [str(a) for a in viewer.dataframe[0].value["amount"]] == ["2187.00", "1296.00"]
    assert not [b for b in viewer.button if b.key == "bank_decide"]

    at = page(app("editor"), "Bank lines")
    suggestions = at.table[0].value
    assert suggestions["invoice"].iloc[0] == "in_a" and "same amount" in suggestions["why"].iloc[0]
    at.text_area(key="bank_allocations").input("in_a")
    at.button(key="bank_decide").click().run()
    assert [e.value for e in at.error] == ["reason: say why: a decision is recorded with its reason"]
    at.text_input(key="bank_reason").input("ISR check digit wrong, amount and customer agree")
    at.button(key="bank_decide").click().run()
    assert not at.exception and at.success, [e.value for e in at.error]
    with console_db.session() as s:
        (decision,) = s.scalars(select(ReconciliationDecision)).all()
    assert (decision.actor, decision.action, decision.allocations[0]["invoice_id"]) == (
        "console:editor", "confirm", "in_a")
