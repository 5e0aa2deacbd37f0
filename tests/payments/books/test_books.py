"""The books over the payments ledger: invoices journalled per plan, price type and tax country,
a credit note and a void reversing revenue, schedule and tax, a month close moving what is not
earned to deferred revenue, the trial balance, and the exports (bean-check validates the
beancount file). Hand-computed figures throughout."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.clock import TestClock
from engine.payments import PaymentService, close_receivable, credit_receivable, record_manual_payment
from engine.payments.books.chart import default_chart
from engine.payments.books.ledger import book_lines, trial_balance, write_beancount, write_csv
from engine.payments.books.schedules import close_month, revenue_report
from engine.payments.handlers import handle_invoice_finalized
from engine.store import Database

D = Decimal


def finalized(invoice_id: str, lines: list[dict[str, Any]], *, tax: str, country: str = "CH",
              credit_applied: str = "0.00") -> dict[str, Any]:
    net = sum((D(x["amount"]) for x in lines), D(0))
    due = net + D(tax) - D(credit_applied)
    return {"id": f"evt_{invoice_id}", "type": "invoice.finalized", "customer_id": "cus_1",
            "properties": {"invoice_id": invoice_id, "amount_due": str(due), "currency": "CHF",
                           "collection_method": "bank_transfer", "tax": tax, "tax_country": country,
                           "credit_applied": credit_applied, "lines": lines}}


def line(plan: str, price_type: str, amount: str, start: str | None, end: str | None,
         discount: str = "0.00") -> dict[str, Any]:
    return {"plan": plan, "price_type": price_type, "amount": amount, "discount": discount,
            "period_start": start, "period_end": end}


@pytest.fixture
def books(db: Database) -> tuple[Database, PaymentService, TestClock]:
    clock = TestClock(datetime(2026, 1, 1, 9, tzinfo=UTC))
    return db, PaymentService([], clock), clock


def test_a_quarter_in_the_books(books: tuple[Database, PaymentService, TestClock], tmp_path: Path) -> None:
    db, service, clock = books
    with db.session() as s:
        # 1 January: a year of Pro in advance, 1,200.00 less a 10 % discount, 8.1 % CH tax.
        handle_invoice_finalized(s, finalized("inv_a", [
            line("pro", "subscription", "1080.00", "2026-01-01", "2027-01-01", discount="120.00")],
            tax="87.48"), service=service)
    clock.set(datetime(2026, 2, 1, 9, tzinfo=UTC))  # 1 February: January's usage and a one-time setup fee
    with db.session() as s:
        handle_invoice_finalized(s, finalized("inv_b", [
            line("pro", "usage", "62.00", "2026-01-01", "2026-02-01"),
            line("pro", "one_time", "50.00", None, None)], tax="0.00", country="DE"), service=service)
        record_manual_payment(s, customer_id="cus_1", amount=D("1167.48"), currency="CHF", invoice_id="inv_a",
                              method_type="bank_transfer", provider="bank", service=service)
        close_month(s, date(2026, 1, 1), "CHF", service=service)
    clock.set(datetime(2026, 3, 1, 9, tzinfo=UTC))  # a credit note on inv_a; inv_b voided
    with db.session() as s:
        credit_receivable(s, "inv_a", D("0.00"), D("108.00"), "cn_1", service=service)
        close_receivable(s, "inv_b", "void", service=service)
        close_month(s, date(2026, 2, 1), "CHF", service=service)
        again = close_month(s, date(2026, 2, 1), "CHF", service=service)
    assert again["entry_id"] == "revrec:2026-02:CHF"

    with db.session() as s:
        tb = trial_balance(s, default_chart(), None, datetime(2026, 3, 2, tzinfo=UTC))
        report = revenue_report(s, date(2026, 1, 1), date(2026, 3, 1))
        lines = book_lines(s, default_chart(), None, datetime(2026, 3, 2, tzinfo=UTC))
    balances = {r.account: r.balance for r in tb.rows}
    assert tb.balanced
    # inv_a: Dr receivables 1167.48, Dr discounts 120.00 / Cr subscriptions 1200.00, Cr CH tax 87.48;
    # paid by transfer; cn_1 of 108.00 to the balance: 99.91 net and 8.09 tax (8.1/108.1 of it).
    assert balances["Assets:Receivables"] == D("0.00")
    assert balances["Assets:Bank:Main"] == D("1167.48")
    assert balances["Liabilities:TaxPayable:CH"] == D("-79.39")  # 87.48 - 8.09
    assert balances["Liabilities:CustomerCredit"] == D("-108.00")
    assert balances["Income:Discounts"] == D("120.00")
    assert balances["Income:CreditNotes"] == D("99.91") + D("112.00")  # cn_1's net and the void of inv_b
    # Deferred revenue after February's close: inv_a's net 1080.00 earned daily over 365 days,
    # 59 days earned (1080 x 59/365 = 174.58); cn_1, issued in March, is March's to close.
    assert balances["Liabilities:DeferredRevenue"] == D("-905.42")
    assert balances["Income:Revenue:Subscriptions"] == D("-1200.00") + D("905.42")
    assert balances["Income:Revenue:Usage"] == D("-62.00")  # earned in January, billed in February
    assert balances["Income:Revenue:OneTime"] == D("-50.00")
    by_month = {(r.month, r.plan): r for r in report}
    assert by_month[(date(2026, 1, 1), "pro")].recognised == D("153.73")  # 1080 x 31/365 = 91.73, + 62.00 usage
    assert by_month[(date(2026, 1, 1), "pro")].billed == D("1080.00")
    february = by_month[(date(2026, 2, 1), "pro")]
    assert (february.billed, february.recognised) == (D("112.00"), D("132.85"))  # 1080 x 28/365 = 82.85 + 50.00
    march = by_month[(date(2026, 3, 1), "pro")]
    assert march.billed == D("-211.91")  # inv_b voided (112.00) and cn_1 (99.91)

    out = io.StringIO()
    write_csv(lines, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert sum(D(r["debit"]) for r in rows) == sum(D(r["credit"]) for r in rows)
    bean = tmp_path / "books.beancount"
    with bean.open("w") as f:
        write_beancount(lines, f)
    check = str(Path(sys.executable).with_name("bean-check"))  # beancount's checker, from the dev extra
    done = subprocess.run([check, str(bean)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr + bean.read_text()


def test_a_downgrade_credit_to_the_balance_then_spent_on_the_next_invoice(
        books: tuple[Database, PaymentService, TestClock]) -> None:
    """Sales credits a downgrade's unused time to the customer's balance (credit_note.issued,
    reason proration) and applies it to the next invoice (credit_applied): the customer-credit
    account goes up, then back to zero, and revenue is booked gross."""
    from engine.payments import handle_credit_note_issued

    db, service, _clock = books
    with db.session() as s:
        handle_credit_note_issued(s, {"id": "evt_cn", "type": "credit_note.issued", "customer_id": "cus_1",
                                      "properties": {"credit_note_id": "cn_down", "reason": "proration",
                                                     "currency": "CHF", "total": "20.00", "to_balance": "20.00",
                                                     "applied_to_invoices": []}}, service=service)
        handle_invoice_finalized(s, finalized("inv_next", [line("pro", "subscription", "50.00", "2026-01-01",
                                                                "2026-02-01")], tax="4.05", credit_applied="20.00"),
                                 service=service)
    with db.session() as s:
        balances = {r.account: r.balance for r in trial_balance(s, default_chart(), None,
                                                                 datetime(2026, 2, 1, tzinfo=UTC)).rows}
    assert balances == {"Income:CreditNotes": D("20.00"), "Liabilities:CustomerCredit": D("0.00"),
                        "Assets:Receivables": D("34.05"), "Income:Revenue:Subscriptions": D("-50.00"),
                        "Liabilities:TaxPayable:CH": D("-4.05")}


def test_the_close_leaves_a_packs_rows_to_the_journals_credits_entries(
        books: tuple[Database, PaymentService, TestClock]) -> None:
    """A pack's report rows (plan "credits", waiting in UNEARNED until spent) are deferred and
    earned in the journal by the credits entries (docs/books.md, *Prepaid credit*): the close
    posts nothing for them, where it would defer the same 45.00 a second time."""
    from engine.payments.books.credits import UNEARNED
    from engine.payments.books.schedules import write_rows

    db, service, clock = books
    row = {"source_id": "credits:sold:inv_p", "invoice_id": "inv_p", "line_no": 1, "customer_id": "cus_1",
           "plan": "credits", "price_type": "one_time", "currency": "CHF", "billed_on": date(2026, 1, 5)}
    with db.session() as s:
        handle_invoice_finalized(s, finalized("inv_s", [
            line("pro", "subscription", "31.00", "2026-01-01", "2026-02-01")], tax="0.00"), service=service)
        write_rows(s, [{**row, "month": UNEARNED, "amount": D("45.00")}])
    clock.set(datetime(2026, 2, 1, 9, tzinfo=UTC))
    with db.session() as s:
        closed = close_month(s, date(2026, 1, 1), "CHF", service=service)
        report = revenue_report(s, date(2026, 1, 1), date(2026, 1, 1))
    assert closed["postings"] == []  # the subscription's January is all earned; the pack is not the close's
    assert [(r.plan, r.billed, r.recognised, r.deferred) for r in report] == [
        ("credits", D("45.00"), D("0.00"), D("45.00")), ("pro", D("31.00"), D("31.00"), D("0.00"))]
