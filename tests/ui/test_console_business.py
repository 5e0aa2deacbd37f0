"""The Overview and Customers pages through Streamlit's AppTest: the figures of a seeded history
beside their charts, a customer's card with the reasons in words, and an operator's change."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.clock import SystemClock
from engine.console import seed_demo
from engine.store import Database
from engine.users import list_audit
from tests.console import history, scenario
from tests.ui.conftest import APP, PASSWORDS, page, texts

pytestmark = pytest.mark.slow
ROLES = {**PASSWORDS, "operator": "operator-demo"}


def signed_in(role: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.text_input(key="signin_name").input(role)
    at.text_input(key="signin_password").input(ROLES[role])
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def frames(at: AppTest) -> str:
    """Every table on the page as text, to look for what a user would read."""
    return "\n".join(t.value.to_string() for t in [*at.dataframe, *at.table])


@pytest.fixture
def history_db(tmp_path, monkeypatch) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/history.db"
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    db = Database(url)
    db.migrate()
    with db.session() as s:
        seed_demo(s, clock=SystemClock())
        history.seed(s)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def scenario_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("customers") / "card.db"
    system = scenario.build(f"sqlite:///{path}")
    with system.db.session() as s:
        seed_demo(s, clock=system.clock)
    system.db.dispose()
    return f"sqlite:///{path}"


@pytest.fixture
def card_db(scenario_url: str, monkeypatch) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BILLING_DATABASE_URL", scenario_url)
    db = Database(scenario_url)
    yield db
    db.dispose()


def test_overview_shows_each_figure_beside_its_chart(history_db: Database) -> None:
    at = page(signed_in("viewer"), "Overview")
    at.date_input(key="ov_range").set_value((date(2026, 2, 1), date(2026, 3, 31))).run()
    at.selectbox(key="ov_catalog").select("saas").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"MRR": "$330.00", "ARR": "$3,960.00", "Net revenue retention": "104.2 %"}
    assert len(at.get("vega_lite_chart")) == 7  # MRR, revenue, movements, failed, ages, dunning, plans
    tables = frames(at)
    for shown in ("$267.00", "$148.00", "1 · $80.00", "1 · +$50.00", "1 · -$40.00", "$162.00", "over 90 days",
                  "suspended", "pro-annual"):
        assert shown in tables, shown
    at.selectbox(key="ov_currency").select("EUR").run()
    assert {m.label: m.value for m in at.metric}["MRR"] == "€0.00"


def test_a_range_that_ends_before_it_starts_is_said_plainly(history_db: Database) -> None:
    at = page(signed_in("viewer"), "Overview")
    at.date_input(key="ov_range").set_value((date(2026, 2, 1),)).run()
    assert "Pick the range's first and last day." in texts(at, "info")


def test_a_customer_card_explains_lines_denials_and_messages(card_db: Database) -> None:
    at = page(signed_in("viewer"), "Customers")
    at.text_input(key="cust_search").input("ADA").run()
    assert at.selectbox(key="cust_pick").options == ["Ada Lovelace · ada@uni.example"]
    at.selectbox(key="cust_invoice").select("INV-2026-000001").run()
    markdown = "\n".join(texts(at, "markdown"))
    assert "Seats: 3 × 10.00 USD = 30.00 USD." in markdown
    assert "Education discount: promotion rule edu-50 of ruleset promotions, version 1 (39.50 USD off" in markdown
    assert "coupon WELCOME20 (7.90 USD off the invoice)" in markdown
    assert "Tax 2.40 USD: 20 % (GB VAT) on 12.00 USD." in markdown
    tables = frames(at)
    assert ("Access to sso was denied by access rule access/suspended-read-only: the account is suspended by dunning "
            "(a payment is overdue); the dunning state is suspended.") in tables
    assert ("invoice_issued was sent because rule invoice-issued of ruleset notifications, version 1 acted on the "
            "event invoice.finalized.") in tables
    assert not re.search(r"\b(in|sub|cus|pay|ntf|evt|dec)_[0-9A-Za-z]", tables)  # names and numbers, never ids
    at.selectbox(key="cust_message").select_index(len(at.selectbox(key="cust_message").options) - 1).run()
    assert not at.exception, at.exception
    assert [b.label for b in at.get("download_button")] == ["Download PDF", "Download HTML"]


def test_the_next_invoice_and_tiers_of_a_paying_customer(card_db: Database) -> None:
    at = page(signed_in("viewer"), "Customers")
    at.text_input(key="cust_search").input("builder").run()
    markdown = "\n".join(texts(at, "markdown"))
    assert "Next invoice total: **$59.20**" in markdown
    at.selectbox(key="cust_invoice").select("INV-2026-000004").run()
    markdown = "\n".join(texts(at, "markdown"))
    assert "Tier 1: 10,000 units at 0.00 USD each = 0.00 USD." in markdown
    assert "Tier 2: 2,000 units at 0.002 USD each = 4.00 USD." in markdown
    assert "$63.20" in frames(at)
    assert any("Changing a subscription needs the operator role" in c for c in texts(at, "caption"))


def test_an_operator_applies_a_coupon_recorded_in_the_audit(card_db: Database) -> None:
    at = page(signed_in("operator"), "Customers")
    at.text_input(key="cust_search").input("builder").run()
    at.radio(key="act_kind").set_value("Apply a coupon")
    at.selectbox(key="act_coupon").select("WINBACK30")
    at.button(key="FormSubmitter:cust_action-Apply").click().run()
    assert "why: say why: the change is recorded in the audit" in texts(at, "error")
    with card_db.read_session() as s:
        assert list_audit(s) == []
    at.text_input(key="act_why").input("win back after the outage")
    at.button(key="FormSubmitter:cust_action-Apply").click().run()
    assert not at.exception, at.exception
    assert "Coupon WINBACK30 applies from the next period." in texts(at, "success")
    assert "coupon WINBACK30" in "\n".join(texts(at, "markdown"))
    with card_db.read_session() as s:
        entry = list_audit(s)[0]
    assert (entry["user"], entry["action"], entry["why"]) == ("operator", "apply_coupon", "win back after the outage")
