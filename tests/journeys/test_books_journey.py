"""A month in the books, over HTTP on the shared test clock (issue 21): a signup paid by bank
transfer (camt.053 through `billing reconcile`), an upgrade with proration, a credit note and a
write-off of what is left of it, a card signup and a refund; then the month close, the journal
per entry, each customer's accounts and revenue schedule against figures computed by hand from
the rules below, and the ledger check after it (conftest).

Hand rules: each line rounded half-up to the cent (a proration: the seats' price x days left /
days), its VAT DE 19 % rounded half-up per line and the invoice's tax the sum of its lines' (so
it can be a cent from 19 % of the invoice's net: 30-day months give 8.34 net, 1.59 tax, not
1.58); the journal posts exactly the invoice's tax; revenue earned daily over the period, each
month the cumulative share rounded half-even; a credit note's tax is its total x tax/total of
the invoice, a refund's its amount x tax/total (half-even). In November and December 2026 the shipped launch promotion takes 20 % off the Pro
base fee (49.00 - 9.80 = 39.20, tax 7.45 instead of 9.31): the signup is 58.55, not 70.21."""

from __future__ import annotations

import calendar
import csv
import io
import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from tests.journeys.harness import ROOT, Engine, money
from tests.payments.camt import Entry, camt053

D = Decimal
CENT = D("0.01")
VAT = D("0.19")
LAUNCH = "rule:promotions/launch-2026"
IBAN = "CH9300762011623852957"  # camt053's account: the shipped chart places it on the bank's


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, ROUND_HALF_UP)


def launch_discount(signup: date, invoice: dict[str, Any]) -> Decimal:
    """The launch promotion's 20 % of the 49.00 base fee when signing up in Nov-Dec 2026, else 0;
    the invoice must agree."""
    applies = date(2026, 11, 1) <= signup <= date(2026, 12, 31)
    assert any(d["source"] == LAUNCH for d in invoice["discounts"]) == applies, invoice["discounts"]
    return D("9.80") if applies else D("0.00")


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


def _mapped_bank_account(engine: Engine, tmp_path: Any, month: date, invoice_id: str, paid: Decimal) -> None:
    """A deployment's chart naming the statement's account: the same journal, exported by the
    operator's CLI through that chart, places the transfer on that account's ledger account."""
    chart = (ROOT / "engine/payments/books/chart.yaml").read_text().replace(
        "    credit: Liabilities:CustomerCredit\n",
        f"    credit: Liabilities:CustomerCredit\n  bank_accounts: {{{IBAN}: Assets:Bank:UBS}}\n")
    path = tmp_path / "chart.yaml"
    path.write_text(chart)
    end = (month + timedelta(days=40)).replace(day=1)
    done = engine.billing("books", "export", "--from", month.isoformat(), "--to", end.isoformat(),
                          env={"BILLING_CHART_OF_ACCOUNTS": str(path)})
    assert done.returncode == 0, done.stderr
    rows = [r for r in csv.DictReader(io.StringIO(done.stdout))
            if r["reference"] == invoice_id and r["journal_account"].startswith("cash:")]
    assert [(r["journal_account"], r["account"], money(r["debit"])) for r in rows] == [
        (f"cash:bank:{IBAN}", "Assets:Bank:UBS", paid)]


def test_a_month_in_the_books(engine: Engine, tmp_path: Any) -> None:
    now = when(engine).date()
    month = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
    days = calendar.monthrange(month.year, month.month)[1]
    advance_to(engine, month + timedelta(days=15))  # the 16th: periods straddle two months

    # Signup by bank transfer: Pro 49.00 + 1 seat 10.00 = 59.00, VAT 9.31 + 1.90 = 11.21, 70.21
    # (under the launch promotion: 9.80 off the base fee, VAT 7.45 + 1.90 = 9.35, 58.55), paid
    # from a camt.053.
    a = engine.customer("books")
    engine.post(f"/v1/customers/{a}/payment_methods", {"type": "bank_transfer", "provider": "bank",
                                                       "default": True}, status=201)
    sub = engine.subscribe(a, "pro")
    engine.advance("1h")
    [first] = engine.invoices(a)
    off = launch_discount(month + timedelta(days=15), first)
    signup_tax = cents((D("49.00") - off) * VAT) + cents(D("10.00") * VAT)
    signup = D("59.00") - off + signup_tax
    assert (money(first["subtotal"]), money(first["discount"]), money(first["tax"]), money(first["total"])) == (
        D("59.00"), off, signup_tax, signup)
    assert signup in (D("70.21"), D("58.55"))  # the figures above, by hand
    [mail] = [t for t in engine.texts(f"{a}@") if "RF" in t]
    found = re.search(r"RF\d\d[0-9A-Z ]{1,30}", mail)
    assert found is not None
    statement = tmp_path / "camt.xml"
    booked = month + timedelta(days=15)  # the bank booked it the day it was invoiced
    statement.write_bytes(camt053([Entry(str(signup), currency="USD", reference=found.group(0).replace(" ", "").rstrip(),
                                         booked=booked.isoformat())], stmt_id=f"{a}-1", iban=IBAN,
                                  start=f"{booked}T00:00:00Z", end=f"{booked + timedelta(days=1)}T00:00:00Z"))
    done = engine.billing("reconcile", str(statement), "--provider", "bank")
    assert done.returncode == 0, done.stderr

    # Five days later a second seat, prorated over the D - 5 days left of the D-day period: the
    # unused base fee and seat given back, the base fee and two seats charged, each line (and
    # the promotion's 20 % of a base line) and its tax rounded on its own. The base lines cancel.
    advance_to(engine, month + timedelta(days=20))
    engine.post(f"/v1/subscriptions/{sub['id']}/change", {"quantity": 2})
    engine.advance("1h")
    upgrade = next(i for i in engine.invoices(a) if i["id"] != first["id"])
    left = D(days - 5) / days
    fee = cents(D("49.00") * left)
    fee -= cents(fee * D("0.20")) if off else 0
    nets = sorted(money(x["amount"]) - money(x["discount"]) for x in upgrade["lines"])
    assert nets == sorted([-fee, fee, -cents(D("10.00") * left), cents(D("20.00") * left)]), upgrade["lines"]
    assert sum((money(x["discount"]) for x in upgrade["lines"]), D(0)) == 0
    upgrade_net = sum(nets, D(0))
    upgrade_tax = sum((cents(n * VAT) for n in nets), D(0))
    assert money(upgrade["tax"]) == upgrade_tax and money(upgrade["total"]) == upgrade_net + upgrade_tax

    # A credit note of 1.00 on it, then what it still owes written off.
    engine.post(f"/v1/invoices/{upgrade['id']}/credit_notes", {"amount": "1.00", "reason": "goodwill"}, status=201)
    engine.post(f"/v1/invoices/{upgrade['id']}/mark_uncollectible", {})
    engine.advance("1h")

    # Another customer pays by card; 10.00 of it is refunded.
    b = engine.customer("books-card")
    engine.subscribe(b, "pro", payment_method={"type": "card", "token": "4242424242424242"})
    engine.advance("1h")
    [paid] = engine.invoices(b)
    assert paid["status"] == "paid" and money(paid["total"]) == signup
    refunded = engine.post(f"/v1/invoices/{paid['id']}/refunds", {"amount": "10.00", "reason": "goodwill"}, status=201)
    # The refund gives back its tax: 10.00 x 11.21 / 70.21 = 1.597 (x 9.35 / 58.55 = 1.597), 1.60.
    refund_tax = (D("10.00") * signup_tax / signup).quantize(CENT, ROUND_HALF_EVEN)
    assert refund_tax == D("1.60") and money(refunded["credit_note"]["tax"]) == refund_tax

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
    # Money moved in the month on the engine's clock: the card payment is dated by the provider's
    # capture, and the sandbox provider stamps with the engine's (test) clock, not the wall's.
    assert {r["date"][:7] for rows in entries.values() for r in rows} == {label}, month
    refund_rows = [r for rows in entries.values() for r in rows if r["entry_id"].startswith("refund:")]
    assert sorted((r["journal_account"], r["debit"], r["credit"]) for r in refund_rows) == [
        ("cash:sandbox", "0.00", "10.00"), ("refunds", "8.40", "0.00"), ("tax_payable:DE", "1.60", "0.00")]
    # The upgrade's own entry posts the invoice's tax to the cent, not 19 % of its net.
    assert balances({"inv": entries[f"inv:{upgrade['id']}"]}) == {
        "receivables": upgrade_net + upgrade_tax, "revenue:pro:subscription": -upgrade_net,
        "tax_payable:DE": -upgrade_tax}
    expected = {
        f"cash:bank:{IBAN}": signup,  # the statement's account
        "cash:sandbox": signup - D("10.00"),
        "refunds": D("10.00") - refund_tax,
        "revenue:pro:subscription": -(D("59.00") * 2 + upgrade_net),  # gross: the discount apart
        "discounts": off * 2,
        "tax_payable:DE": -(signup_tax * 2 + upgrade_tax - credit_tax - refund_tax),
        "credit_notes": D("1.00") - credit_tax,
        "bad_debt": total - D("1.00"),
    }
    assert balances(entries) == {k: v for k, v in expected.items() if v}
    assert {r["account"] for rows in entries.values() for r in rows if r["journal_account"].startswith("cash:bank")} == {
        "Assets:Bank:Main"}
    _mapped_bank_account(engine, tmp_path, month, first["id"], signup)

    # A's revenue: each line earned daily over its period; the credit note folded into this month.
    report = engine.admin.get("/v1/books/revenue", params={"from": label, "to": label, "customer_id": a}).json()
    [row] = report["items"]
    base, seat = share(D("49.00") - off, days - 15, days), share(D("10.00"), days - 15, days)
    by_position = [money(x["amount"]) - money(x["discount"]) for x in sorted(upgrade["lines"], key=lambda x: x["position"])]
    now_of = [share(net, days - 20, days - 5) for net in by_position]  # each line's days this month
    prorated = sum(now_of, D(0))
    credit_net = D("1.00") - credit_tax
    billed = D("59.00") - off + upgrade_net - credit_net
    # The credit note is spread like the invoice it credits (docs/books.md): its net split over
    # the lines in proportion (half-even, the last line the rest), each part spread like its line.
    credit_now, rest = D(0), credit_net
    for k, (net, this_month) in enumerate(zip(by_position, now_of, strict=True)):
        part = rest if k == len(by_position) - 1 else (credit_net * net / upgrade_net).quantize(CENT, ROUND_HALF_EVEN)
        rest -= part
        credit_now += share(part, int(this_month / CENT), int(net / CENT)) if net else D(0)
    assert money(row["billed"]) == billed
    assert money(row["recognised"]) == base + seat + prorated - credit_now
    assert money(row["deferred"]) == billed - money(row["recognised"])
