"""`billing books ...` as finance runs it: its entry point, real exit codes (tests/cli/runner.invoke),
over a journal
with one invoice of a year in advance (hand-computed figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from engine.clock import TestClock
from engine.payments import PaymentService
from engine.payments.handlers import handle_invoice_finalized
from engine.store import Database
from engine.store.migrate import upgrade
from tests.cli.test_operations_cli import billing

YEAR = {"id": "evt_1", "type": "invoice.finalized", "customer_id": "cus_1", "properties": {
    "invoice_id": "inv_1", "amount_due": "1297.20", "currency": "CHF", "collection_method": "bank_transfer",
    "tax": "97.20", "tax_country": "CH",
    "lines": [{"plan": "pro", "price_type": "subscription", "amount": "1200.00", "discount": "0.00",
               "period_start": "2026-01-01", "period_end": "2027-01-01"}]}}


def test_trial_balance_exports_revenue_and_close_from_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        handle_invoice_finalized(s, YEAR, service=PaymentService((), TestClock(datetime(2026, 1, 1, 9, tzinfo=UTC))))
    db.dispose()

    tb = billing("books", "trial-balance", "--to", "2026-02-01", "--json", cwd=tmp_path)
    assert tb.returncode == 0, tb.stderr
    balances = {a["account"]: a["balance"] for a in json.loads(tb.stdout)["accounts"]}
    assert balances == {"Assets:Receivables": "1297.20", "Income:Revenue:Subscriptions": "-1200.00",
                        "Liabilities:TaxPayable:CH": "-97.20"}

    revenue = billing("books", "revenue", "--from", "2026-01", "--to", "2026-02", cwd=tmp_path)
    assert revenue.returncode == 0, revenue.stderr
    # 1200 x 31/365 = 101.92 in January, 1200 x 28/365 = 92.05 in February (cumulative 193.97).
    assert revenue.stdout.splitlines()[1].split() == ["2026-01", "pro", "CHF", "1200.00", "101.92", "1098.08"]
    assert revenue.stdout.splitlines()[2].split() == ["2026-02", "pro", "CHF", "0.00", "92.05", "1006.03"]

    closed = billing("books", "close", "2026-01", cwd=tmp_path)
    assert closed.returncode == 0, closed.stderr
    [entry] = json.loads(closed.stdout)["entries"]
    assert entry["postings"] == [{"account": "revenue:pro:subscription", "debit": "1098.08", "credit": "0.00"},
                                 {"account": "deferred_revenue", "debit": "0.00", "credit": "1098.08"}]

    out = tmp_path / "jan.beancount"
    exported = billing("books", "export", "--from", "2026-01-01", "--to", "2026-02-01", "--format", "beancount",
                       "--out", str(out), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    check = subprocess.run([str(Path(sys.executable).with_name("bean-check")), str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Liabilities:DeferredRevenue  -1098.08 CHF" in out.read_text()


def test_bad_input_exits_1_naming_file_line_and_field(tmp_path: Path) -> None:
    chart = tmp_path / "chart.yaml"
    chart.write_text("chart: broken\naccounts:\n  receivables: assets receivables\n")
    bad = billing("books", "check-chart", str(chart), cwd=tmp_path)
    assert bad.returncode == 1
    assert f"{chart}:3: accounts.receivables: 'assets receivables' does not match" in bad.stderr
    assert f"{chart}:1: (document): 'revenue' is required" in bad.stderr
    upgrade(f"sqlite:///{tmp_path}/ops.db")
    key = billing("apikey", "create", "--scope", "finance", cwd=tmp_path)
    assert key.returncode == 0 and key.stdout.splitlines()[-1].startswith("bk_"), key.stderr
    month = billing("books", "close", "2026-13", cwd=tmp_path)
    assert month.returncode == 1 and "MONTH: '2026-13' is not a month" in month.stderr
    late = billing("books", "revenue", "--from", "2026-01", "--to", "9999-12", cwd=tmp_path)  # was a traceback
    assert late.returncode == 1 and "--to: '9999-12' is not a month from 1970-01 to 2199-12" in late.stderr, late.stderr
    shipped = Path(__file__).resolve().parents[2] / "engine" / "payments" / "books" / "chart.yaml"
    ok = billing("books", "check-chart", str(shipped), cwd=tmp_path)
    assert ok.returncode == 0 and "every posting has one" in ok.stdout
