"""A month in the books, over HTTP on the shared test clock (issue 21): a signup paid by bank
transfer (camt.053 through `billing reconcile`), an upgrade with proration, a credit note and a
write-off of what is left of it, a card signup and a refund; then the month close, the journal
per entry, each customer's accounts and revenue schedule against figures computed by hand from
the rules below, and the ledger check after it (conftest).

Hand rules: VAT DE 19 % half-up per line; revenue earned daily over the period, each month the
cumulative share rounded half-even; a credit note's tax is its total x tax/total of the invoice."""

from __future__ import annotations

import calendar
import csv
import io
import re
import subprocess
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tests.journeys.harness import BILLING, ROOT, Engine, money
from tests.payments.camt import Entry, camt053

D = Decimal
CENT = D("0.01")


def when(engine: Engine) -> datetime:
    return datetime.fromisoformat(engine.now().replace("Z", "+00:00"))


def advance_to(engine: Engine, day: date, hour: int = 1) -> None:
    engine.post("/v1/clock/advance", {"to": f"{day.isoformat()}T{hour:02d}:00:00Z"})


def share(amount: Decimal, days: int, total: int) -> Decimal:
    return (amount * days / total).quantize(CENT, ROUND_HALF_EVEN)


def journal(engine: Engine, start: date, references: set[str]) -> dict[str, list[dict[str, str]]]:
    """The journal entries (through the chart) that name one of `references`, by entry."""
    r = engine.admin.get("/v1/books/journal", params={"from": start.isoformat(), "to": "2100-01-01"})
    assert r.status_code == 200, r.text
    out: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in csv.DictReader(io.StringIO(r.text)):
        if row["reference"] in references:
            out[row["entry_id"]].append(row)
    return out


def balances(entries: dict[str, list[dict[str, str]]]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for rows in entries.values():
        for row in rows:
            out[row["journal_account"]] += money(row["debit"]) - money(row["credit"])
    return {k: v for k, v in out.items() if v}


def test_a_month_in_the_books(engine: Engine, tmp_path: Any) -> None:
    now = when(engine).date()
    month = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
    days = calendar.monthrange(month.year, month.month)[1]
    advance_to(engine, month + timedelta(days=15))  # the 16th: periods straddle two months

    # Signup by bank transfer: Pro 49.00 + 1 seat 10.00 = 59.00, VAT 11.21, paid from a camt.053.
    a = engine.customer("books")
    engine.post(f"/v1/customers/{a}/payment_methods", {"type": "bank_transfer", "provider": "bank",
                                                       "default": True}, status=201)
    sub = engine.subscribe(a, "pro")
    engine.advance("1h")
    [first] = engine.invoices(a)
    assert (money(first["subtotal"]), money(first["tax"]), money(first["total"])) == (D("59.00"), D("11.21"),
                                                                                       D("70.21"))
    [mail] = [t for t in engine.texts(f"{a}@") if "RF" in t]
    found = re.search(r"RF\d\d[0-9A-Z ]{1,30}", mail)
    assert found is not None
    statement = tmp_path / "camt.xml"
    booked = month + timedelta(days=15)  # the bank booked it the day it was invoiced
    statement.write_bytes(camt053([Entry("70.21", currency="USD", reference=found.group(0).replace(" ", "").rstrip(),
                                         booked=booked.isoformat())], stmt_id=f"{a}-1",
                                  start=f"{booked}T00:00:00Z", end=f"{booked + timedelta(days=1)}T00:00:00Z"))
    done = subprocess.run([BILLING, "reconcile", str(statement), "--provider", "bank"], cwd=ROOT, env=engine.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    # Five days later a second seat, prorated over the D - 5 days left of the D-day period.
    advance_to(engine, month + timedelta(days=20))
    engine.post(f"/v1/subscriptions/{sub['id']}/change", {"quantity": 2})
    engine.advance("1h")
    upgrade = next(i for i in engine.invoices(a) if i["id"] != first["id"])
    upgrade_net = sum((money(x["amount"]) - money(x["discount"]) for x in upgrade["lines"]), D(0))
    assert abs(upgrade_net - D("10.00") * (days - 5) / days) <= CENT, upgrade["lines"]
    assert money(upgrade["tax"]) == (upgrade_net * D("0.19")).quantize(CENT)

    # A credit note of 1.00 on it, then what it still owes written off.
    engine.post(f"/v1/invoices/{upgrade['id']}/credit_notes", {"amount": "1.00", "reason": "goodwill"}, status=201)
    engine.post(f"/v1/invoices/{upgrade['id']}/mark_uncollectible", {})
    engine.advance("1h")

    # Another customer pays by card; 10.00 of it is refunded.
    b = engine.customer("books-card")
    engine.subscribe(b, "pro", payment_method={"type": "card", "token": "4242424242424242"})
    engine.advance("1h")
    [paid] = engine.invoices(b)
    assert paid["status"] == "paid"
    engine.post(f"/v1/invoices/{paid['id']}/refunds", {"amount": "10.00", "reason": "goodwill"}, status=201)

    # The month ends; finance closes it (again: nothing more).
    advance_to(engine, (month + timedelta(days=32)).replace(day=1))
    label = month.isoformat()[:7]
    closed = engine.post("/v1/books/close", {"month": label})
    assert engine.post("/v1/books/close", {"month": label}) == closed

    # The journal of the two customers' invoices, entry by entry, balances; its accounts hold:
    ids = {first["id"], upgrade["id"], paid["id"]}
    entries = journal(engine, month, ids)
    for entry_id, rows in entries.items():
        assert sum(money(r["debit"]) for r in rows) == sum(money(r["credit"]) for r in rows), entry_id
    total = money(upgrade["total"])
    credit_tax = (D("1.00") * money(upgrade["tax"]) / total).quantize(CENT, ROUND_HALF_EVEN)
    refund_rows = [r for rows in entries.values() for r in rows if r["entry_id"].startswith("refund:")]
    assert sorted((r["journal_account"], r["debit"], r["credit"]) for r in refund_rows) == [
        ("cash:sandbox", "0.00", "10.00"), ("refunds", "10.00", "0.00")]
    assert balances(entries) == {
        "cash:bank": D("70.21"),
        "cash:sandbox": D("70.21") - D("10.00"),
        "refunds": D("10.00"),
        "revenue:pro:subscription": -(D("59.00") * 2 + upgrade_net),
        "tax_payable:DE": -(D("11.21") * 2 + money(upgrade["tax"]) - credit_tax),
        "credit_notes": D("1.00") - credit_tax,
        "bad_debt": total - D("1.00"),
    }

    # A's revenue: each line earned daily over its period; the credit note folded into this month.
    report = engine.admin.get("/v1/books/revenue", params={"from": label, "to": label, "customer_id": a}).json()
    [row] = report["items"]
    base, seat = share(D("49.00"), days - 15, days), share(D("10.00"), days - 15, days)
    prorated = sum((share(money(x["amount"]) - money(x["discount"]), days - 20, days - 5) for x in upgrade["lines"]),
                   D(0))
    credit_net = D("1.00") - credit_tax
    billed = D("59.00") + upgrade_net - credit_net
    # The credit note is spread like the invoice it credits: this month's share, the rest later.
    credit_now = share(credit_net, int(prorated / CENT), int(upgrade_net / CENT))
    assert money(row["billed"]) == billed
    assert money(row["recognised"]) == base + seat + prorated - credit_now
    assert money(row["deferred"]) == billed - money(row["recognised"])
