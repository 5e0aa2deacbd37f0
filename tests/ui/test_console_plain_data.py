"""No raw data for business users: on the business pages no JSON block, no internal id where a
name or a number exists, money and dates formatted (AppTest over the card scenario: invoices,
payments, a suspended customer's denial, messages)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from engine import sales
from engine.console import engine_clock
from engine.store import Database
from engine.system.operations import subscription_changes as operations
from tests.ui.conftest import page, texts
from tests.ui.test_console_business import frames, signed_in
from tests.ui.test_console_clock import card_url  # noqa: F401 (the module's fixture)

pytestmark = pytest.mark.slow
RAW_ID = re.compile(r"\b(in|sub|cus|pay|ntf|evt|dec|ref|cn)_[0-9A-Za-z]")
ISO = re.compile(r"\b20\d\d-\d\d-\d\d(T|\b)")
BUSINESS = ("Overview", "Customers", "Inspect", "Access tester", "Audit & users")


@pytest.fixture
def card_db(card_url: str, monkeypatch) -> Iterator[Database]:  # type: ignore[no-untyped-def]  # noqa: F811
    monkeypatch.setenv("BILLING_DATABASE_URL", card_url)
    monkeypatch.delenv("BILLING_TEST_CLOCK", raising=False)
    db = Database(card_url)
    yield db
    db.dispose()


def shown(at: AppTest) -> str:
    """What a user reads on the page: text, tables, captions, labels of the pickers' choices."""
    boxes = [str(o) for b in at.selectbox for o in b.options]
    parts = [*texts(at, "markdown"), *texts(at, "caption"), *texts(at, "subheader"), frames(at), *boxes]
    return "\n".join(parts)


def no_raw_data(at: AppTest, name: str) -> None:
    assert not at.exception, at.exception
    assert not at.json, f"{name} shows a JSON block: {at.json[0].value}"
    seen = shown(at)
    assert not RAW_ID.search(seen), f"{name} shows an internal id: {RAW_ID.search(seen)}"
    assert not ISO.search(seen), f"{name} shows a raw ISO date: {ISO.search(seen)}"


def test_no_business_page_shows_json_ids_or_raw_dates(card_db: Database) -> None:
    with card_db.session() as s:  # an operator's change in the audit: named by its customer
        [sub] = [x for x in sales.list_subscriptions(s, "cus_bob")]
        operations.pause(s, {"name": "operator", "role": "operator"}, sub["id"], "summer break",
                         clock=engine_clock(card_db))
    at = signed_in("admin")
    for name in BUSINESS:
        no_raw_data(page(at, name), name)
    assert "paused the subscription of Bob Builder" in frames(at)


def test_inspect_reads_as_sentences_and_formatted_figures(card_db: Database) -> None:
    at = page(signed_in("viewer"), "Inspect")
    at.text_input(key="insp_search").input("ada").run()
    assert at.selectbox(key="insp_customer").options == ["Ada Lovelace · ada@uni.example"]
    no_raw_data(at, "Inspect")
    tables = frames(at)
    assert "Access to sso was denied by access rule access/suspended-read-only" in tables
    assert "INV-2026-000001" in tables
    assert re.search(r"\$\d[\d,]*\.\d\d", tables)  # money with its symbol, two decimals


def test_the_access_tester_answers_in_a_table_not_json(card_db: Database) -> None:
    at = page(signed_in("viewer"), "Access tester")
    assert "Ada Lovelace · ada@uni.example" in at.selectbox(key="acc_customer").options
    at.selectbox(key="acc_customer").select("cus_ada")
    at.text_input(key="acc_feature").input("sso")
    at.button(key="acc_go").click().run()
    no_raw_data(at, "Access tester")
    assert any(e.startswith("Denied") for e in texts(at, "error"))
    assert "sso" in frames(at)
