"""A Hypothesis property over the stored books: random invoices (lines of every price type, a
discount, tax), payments and credit notes through the payments functions; then every journal
entry balances, the trial balance balances, and for every month recognised + deferred equals
what was invoiced net of credits (the revenue report against the invoices themselves)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.clock import TestClock
from engine.payments import PaymentService, credit_receivable, record_manual_payment
from engine.payments.books import default_chart, revenue_report, trial_balance
from engine.payments.books.schedules import split_credit
from engine.payments.handlers import handle_invoice_finalized
from engine.payments.models import JournalLine
from engine.store import Database

D = Decimal
START = datetime(2026, 1, 3, 9, tzinfo=UTC)
cents = st.integers(1, 500_000).map(lambda c: D(c) / 100)
line = st.fixed_dictionaries({
    "price_type": st.sampled_from(["subscription", "usage", "one_time"]),
    "amount": cents, "days": st.integers(1, 400), "offset": st.integers(-40, 40)})
invoice = st.fixed_dictionaries({
    "day": st.integers(0, 300), "lines": st.lists(line, min_size=1, max_size=3),
    "paid": st.sampled_from([0, 50, 100]), "credit": st.integers(0, 100)})
counter = itertools.count()


def event(invoice_id: str, spec: dict[str, Any], billed: date) -> tuple[dict[str, Any], Decimal, Decimal]:
    lines, net = [], D(0)
    for x in spec["lines"]:
        start = billed + timedelta(days=x["offset"])
        lines.append({"plan": "pro", "price_type": x["price_type"], "amount": str(x["amount"]), "discount": "0.00",
                      "period_start": start.isoformat(), "period_end": (start + timedelta(days=x["days"])).isoformat()})
        net += x["amount"]
    tax = (net * D("0.081")).quantize(D("0.01"))
    props = {"invoice_id": invoice_id, "amount_due": str(net + tax), "currency": "CHF", "tax": str(tax),
             "tax_country": "CH", "collection_method": "bank_transfer", "lines": lines}
    return {"id": f"evt_{invoice_id}", "customer_id": "cus_p", "properties": props}, net, tax


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(invoice, min_size=1, max_size=4))
def test_books_balance_and_revenue_adds_up(tmp_path: Path, specs: list[dict[str, Any]]) -> None:
    db = Database(f"sqlite:///{tmp_path}/prop-{next(counter)}.db")
    db.migrate()
    clock = TestClock(START)
    service = PaymentService((), clock)
    invoiced = D(0)
    for n, spec in enumerate(sorted(specs, key=lambda s: s["day"])):
        clock.set(START + timedelta(days=spec["day"]))
        env, net, tax = event(f"inv_{n}", spec, clock.now().date())
        with db.session() as s:
            handle_invoice_finalized(s, env, service=service)
            paid = ((net + tax) * spec["paid"] / 100).quantize(D("0.01"))
            if paid:  # half of 0.01 rounds to 0.00, which is no payment (and refused as one)
                record_manual_payment(s, customer_id="cus_p", amount=paid, currency="CHF", invoice_id=f"inv_{n}",
                                      provider="bank", service=service)
            credit = ((net + tax) * spec["credit"] / 100).quantize(D("0.01"))
            if credit:
                invoiced -= split_credit(s, f"inv_{n}", credit, "CHF").net
                credit_receivable(s, f"inv_{n}", D(0), credit, f"cn_{n}", service=service)
        invoiced += net
    with db.session() as s:
        per_entry: dict[str, Decimal] = defaultdict(Decimal)
        for row in s.query(JournalLine):
            per_entry[row.entry_id] += row.debit - row.credit
        assert all(v == 0 for v in per_entry.values()), per_entry
        assert trial_balance(s, default_chart(), None, datetime(2030, 1, 1, tzinfo=UTC)).balanced
        report = revenue_report(s, date(2025, 11, 1), date(2028, 3, 1))
    recognised = D(0)
    for row in report:
        recognised += row.recognised
        billed_so_far = sum((r.billed for r in report if r.month <= row.month), D(0))
        assert recognised + row.deferred == billed_so_far, row
    assert sum((r.billed for r in report), D(0)) == invoiced == recognised
    db.dispose()
