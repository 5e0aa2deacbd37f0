"""The books through their door: HTTP with a `finance` key (admin works too, product does not),
against a System with the sandbox provider on a test clock: a subscription paid by card, then
the trial balance, the journal as CSV and beancount (bean-check), the revenue report and the
month close, and bad input answered with the field and nothing written."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engine.api import create_app
from engine.api.keys import create_key
from engine.config import Settings
from engine.payments.models import JournalLine
from engine.system import System
from tests.api.conftest import keyed_system
from tests.payments.conftest import API_KEY, SECRET, Server

D = Decimal


@pytest.fixture
def finance(tmp_path: Any, sandbox: Server) -> Iterator[tuple[System, TestClient, dict[str, str]]]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/books.db", test_clock="2026-11-01T09:00:00Z",
                        psp_url=sandbox.url, psp_api_key=API_KEY, psp_webhook_secret=SECRET,
                        access_denial_buffer_ms=0)
    system, admin, product = keyed_system(settings)
    with system.db.session() as s:
        _, key = create_key(s, "finance", now=datetime(2026, 11, 1, tzinfo=UTC))
    keys = {"admin": admin, "product": product, "finance": key}
    with TestClient(create_app(system.api_context()), headers={"Authorization": f"Bearer {key}"}) as client:
        yield system, client, keys
    system.db.dispose()


def journal_lines(system: System) -> int:
    with system.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(JournalLine)) or 0)


def test_a_month_of_pro_in_the_books_over_http(finance: tuple[System, TestClient, dict[str, str]],
                                              tmp_path: Path) -> None:
    system, client, keys = finance
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    assert client.post("/v1/customers", json={"id": "cus_b", "email": "b@example.com", "name": "B", "country": "DE"},
                       headers=admin).status_code == 201
    r = client.post("/v1/subscriptions", json={"customer_id": "cus_b", "plan": "pro", "quantity": 1, "trial_days": 0,
                                               "payment_method": {"type": "card", "token": "4242424242424242"}},
                    headers=admin)
    assert r.status_code == 201, r.text
    for _ in range(3):  # sales finalizes, payments collects, sales marks paid
        system.drain()

    # Pro is 49.00 + 1 seat x 10.00 = 59.00 a month in advance, DE VAT 19 % = 11.21: 70.21 paid by card.
    # (A card payment is journalled when the provider captured it, on the sandbox's wall clock.)
    tb = client.get("/v1/books/trial_balance", params={"to": "2100-01-01"})
    assert tb.status_code == 200, tb.text
    balances = {a["account"]: D(a["balance"]) for a in tb.json()["accounts"]}
    assert tb.json()["balanced"] is True
    assert balances == {"Assets:Receivables": D("0.00"), "Assets:Cash:Sandbox": D("70.21"),
                        "Income:Revenue:Subscriptions": D("-59.00"), "Liabilities:TaxPayable:DE": D("-11.21")}

    journal = client.get("/v1/books/journal", params={"from": "2026-11-01", "to": "2100-01-01"})
    rows = list(csv.DictReader(io.StringIO(journal.text)))
    assert {r["journal_account"] for r in rows} == {"receivables", "revenue:pro:subscription", "tax_payable:DE",
                                                    "cash:sandbox"}
    bean = client.get("/v1/books/journal", params={"from": "2026-11-01", "to": "2100-01-01", "format": "beancount"})
    path = tmp_path / "journal.beancount"
    path.write_text(bean.text)
    check = subprocess.run([str(Path(sys.executable).with_name("bean-check")), str(path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # The period is 1 to 30 November (30 days): all of it earned in November.
    revenue = client.get("/v1/books/revenue", params={"from": "2026-11", "to": "2026-12"}).json()["items"]
    assert revenue == [{"month": "2026-11", "plan": "pro", "currency": "USD", "billed": "59.00",
                        "recognised": "59.00", "deferred": "0.00"}]

    early = client.post("/v1/books/close", json={"month": "2026-11"})
    assert early.status_code == 409 and early.json()["field"] == "month"  # the clock's state, not the shape
    before = journal_lines(system)
    assert client.post("/v1/clock/advance", json={"to": "2026-12-01T00:30:00Z"}, headers=admin).status_code == 200
    system.drain()
    closed = client.post("/v1/books/close", json={"month": "2026-11"})
    assert closed.status_code == 200, closed.text
    [entry] = closed.json()["entries"]
    assert entry["entry_id"] == "revrec:2026-11:USD" and entry["postings"] == []  # nothing left deferred
    assert journal_lines(system) > before  # December's invoice, nothing from the close


def test_only_finance_and_admin_keys_read_the_books_and_bad_input_names_the_field(
        finance: tuple[System, TestClient, dict[str, str]]) -> None:
    system, client, keys = finance
    product = client.get("/v1/books/trial_balance", params={"to": "2026-11-02"},
                         headers={"Authorization": f"Bearer {keys['product']}"})
    assert product.status_code == 403
    admin = client.get("/v1/books/trial_balance", params={"to": "2026-11-02"},
                       headers={"Authorization": f"Bearer {keys['admin']}"})
    assert admin.status_code == 200 and admin.json()["accounts"] == []
    assert client.get("/v1/books/trial_balance", headers={"Authorization": ""}).status_code == 401
    # A reversed range is valid by the contract and has nothing in it (as the webhook replay).
    reversed_range = client.get("/v1/books/journal", params={"from": "2026-11-05", "to": "2026-11-01"})
    assert reversed_range.status_code == 200 and reversed_range.text.strip().count("\n") == 0, reversed_range.text
    reversed_months = client.get("/v1/books/revenue", params={"from": "2026-12", "to": "2026-11"})
    assert reversed_months.status_code == 200 and reversed_months.json()["items"] == []
    # A number is not a date (pydantic would read "0" as 1970-01-01: schemathesis found it).
    for path in ("/v1/books/trial_balance", "/v1/books/journal"):
        number = client.get(path, params={"from": "2026-11-01", "to": "0"})
        assert number.status_code == 422 and number.json()["field"] == "to", number.text
    bad_month = client.post("/v1/books/close", json={"month": "2026-13"})
    assert bad_month.status_code == 422 and "month" in bad_month.text
    # Months outside 1970-01..2199-12 (year 0 was a 500: date() cannot hold it) are refused by
    # the contract's pattern, naming the field; so is a year 9999 whose next month cannot exist.
    for month in ("0000-01", "1969-12", "9999-12"):
        closing = client.post("/v1/books/close", json={"month": month})
        assert closing.status_code == 422 and closing.json()["field"] == "month", closing.text
        report = client.get("/v1/books/revenue", params={"from": month, "to": "2026-11"})
        assert report.status_code == 422 and report.json()["field"] == "from", report.text
        report = client.get("/v1/books/revenue", params={"from": "2026-11", "to": month})
        assert report.status_code == 422 and report.json()["field"] == "to", report.text
    assert journal_lines(system) == 0
