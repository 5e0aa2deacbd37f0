"""`billing reconcile` on bank files as an operator runs it: its entry point, real exit codes
(tests/cli/runner.invoke);
then the open line is finished with `billing reconcile-decide`, recorded as cli:<user>."""

from __future__ import annotations

import getpass
import json
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from engine.clock import SystemClock
from engine.payments import CollectableInvoice, PaymentService, open_receivable
from engine.payments.models import BankLine, ReconciliationDecision, SettlementImport
from engine.store import Database
from engine.store.migrate import upgrade
from tests.cli.test_operations_cli import billing

BATCH = Path(__file__).resolve().parents[1] / "payments" / "bank_files" / "oca__test-camt053-txdtls.xml"


def test_reconcile_a_bank_file_then_decide_its_open_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        for inv, amount in (("in_a", "2187.00"), ("in_b", "1296.00")):
            open_receivable(s, CollectableInvoice(inv, f"cus_{inv}", Decimal(amount), "CHF"),
                            collection_method="bank_transfer", service=PaymentService((), SystemClock()))

    truncated = tmp_path / "truncated.xml"
    truncated.write_bytes(BATCH.read_bytes()[:3000])
    bad = billing("reconcile", str(truncated), cwd=tmp_path)
    assert bad.returncode == 1
    assert f"{truncated}:" in bad.stderr and "not well-formed XML" in bad.stderr and "truncated" in bad.stderr
    with db.session() as s:
        assert s.scalars(select(SettlementImport)).all() == []

    ok = billing("reconcile", str(BATCH), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["counts"] == {"missing_in_ledger": 2}  # no QR numbers were remembered

    listed = billing("reconcile-lines", cwd=tmp_path)
    items = json.loads(listed.stdout)["items"]
    assert [(i["amount"], i["suggestions"][0]["invoice_id"]) for i in items] == [("2187.00", "in_a"),
                                                                                  ("1296.00", "in_b")]
    no_reason = billing("reconcile-decide", items[0]["id"], "confirm", "--invoice", "in_a", "--reason", " ",
                        cwd=tmp_path)
    assert no_reason.returncode == 1 and "reason" in no_reason.stderr
    done = billing("reconcile-decide", items[0]["id"], "confirm", "--invoice", "in_a",
                   "--reason", "ISR check digit wrong, amount and customer agree", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with db.session() as s:
        (decision,) = s.scalars(select(ReconciliationDecision)).all()
        assert decision.actor == f"cli:{getpass.getuser()}" and decision.reason.startswith("ISR check digit")
        assert s.get(BankLine, items[0]["id"]).status == "resolved"  # type: ignore[union-attr]
    db.dispose()
