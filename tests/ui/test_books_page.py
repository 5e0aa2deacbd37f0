"""The console's Books page shows the trial balance through the chart of accounts and revenue
recognised vs billed, from the same journal the HTTP calls read (hand-computed figures)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from streamlit.testing.v1 import AppTest

from engine.clock import TestClock
from engine.payments import PaymentService
from engine.payments.handlers import handle_invoice_finalized
from engine.store import Database
from tests.cli.test_books_cli import YEAR
from tests.ui.conftest import page


def test_books_page_shows_trial_balance_and_revenue(console_db: Database, app: Callable[[str | None], AppTest]) -> None:
    with console_db.session() as s:
        handle_invoice_finalized(s, YEAR, service=PaymentService((), TestClock(datetime(2026, 1, 1, 9, tzinfo=UTC))))
    at = page(app("viewer"), "Books")
    at.date_input(key="books_from").set_value(date(2026, 1, 1)).run()
    at.date_input(key="books_to").set_value(date(2026, 3, 1)).run()
    assert not at.exception, at.exception
    trial, revenue = (t.value for t in at.dataframe)
    assert dict(zip(trial["account"], trial["balance"], strict=True)) == {
        "Assets:Receivables": "1297.20", "Income:Revenue:Subscriptions": "-1200.00",
        "Liabilities:TaxPayable:CH": "-97.20"}
    assert [s.value for s in at.success] == ["Balanced: CHF: debits 1297.20 = credits 1297.20"]
    assert list(zip(revenue["month"], revenue["billed"], revenue["recognised"], revenue["deferred"], strict=True)) == [
        ("2026-01", "1200.00", "101.92", "1098.08"), ("2026-02", "0.00", "92.05", "1006.03")]
