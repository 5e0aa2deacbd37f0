"""A customer's wallet and spend budget on the customer card (AppTest): the balance, grants and
ledger in plain words and figures; an operator grants credit with a reason (a zero or negative
amount, or no reason, refused naming the field with nothing written); a viewer sees no form and
the engine refuses them too; the budget set, shown and removed, recorded in the audit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from streamlit.testing.v1 import AppTest

from engine import credits, sales
from engine.clock import TestClock
from engine.config import Settings
from engine.console import seed_demo
from engine.console import wallet as console_wallet
from engine.store import Database
from engine.system import build_system
from engine.system.operations import wallet_changes
from engine.users import PermissionDenied, list_audit
from tests.credits.test_tokens import CATALOG as TOKEN_CATALOG
from tests.ui.conftest import page, texts
from tests.ui.test_console_business import frames, signed_in
from tests.ui.test_console_plain_data import no_raw_data

pytestmark = pytest.mark.slow
START = datetime(2026, 10, 1, 9, tzinfo=UTC)
CUSTOMER = "cus_carol"


def wallet_store(url: str) -> None:
    """Carol Credit (US) on Pro x 1 since Oct 1 2026, no credit yet; the demo console users."""
    clock = TestClock(START)
    system = build_system(Settings(database_url=url), clock=clock)
    with system.db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "demo", clock=clock)
        sales.create_customer(s, {"id": CUSTOMER, "name": "Carol Credit", "email": "carol@credit.example",
                                  "country": "US"}, clock=clock)
    with system.db.session() as s:
        sales.create_subscription(s, CUSTOMER, "pro", clock=clock, quantity=1, trial_days=0)
        seed_demo(s, clock=clock)
    system.drain()
    system.db.dispose()


@pytest.fixture
def wallet_db(tmp_path, monkeypatch) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/wallet.db"
    wallet_store(url)
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    monkeypatch.delenv("BILLING_TEST_CLOCK", raising=False)
    db = Database(url)
    yield db
    db.dispose()


def carol(role: str) -> AppTest:
    at = page(signed_in(role), "Customers")
    at.text_input(key="cust_search").input("carol").run()
    assert not at.exception, at.exception
    return at


def grant(at: AppTest, amount: str, reason: str) -> AppTest:
    at.text_input(key="wal_amount").input(amount)
    at.text_input(key="wal_reason").input(reason)
    at.button(key="FormSubmitter:wal_grant-Grant credit").click().run()
    assert not at.exception, at.exception
    return at


def ledger(at: AppTest):  # type: ignore[no-untyped-def]
    """The ledger's table (the one with a What column)."""
    [table] = [d.value for d in at.dataframe if "What" in d.value.columns]
    return table


def balance(db: Database) -> list[dict[str, str]]:
    with db.read_session() as s:
        return list(credits.wallet(s, CUSTOMER, datetime.now(UTC))["balances"])


def test_an_operator_grants_credit_and_reads_the_wallet(wallet_db: Database) -> None:
    at = carol("operator")
    assert "No credit granted yet." in texts(at, "caption")
    grant(at, "25.50", "apology for the outage")
    assert "Granted $25.50: apology for the outage." in texts(at, "success")
    markdown = "\n".join(texts(at, "markdown"))
    assert "Balance **$25.50** · available now $25.50" in markdown
    tables = frames(at)
    for shown in ("Operator", "apology for the outage", "$25.50", "never", "Granted", "active"):
        assert shown in tables, shown
    no_raw_data(at, "Customers with a wallet")
    assert balance(wallet_db) == [{"unit": "USD", "balance": "25.50", "available": "25.50", "pending": "0.00"}]
    with wallet_db.read_session() as s:
        audit = [(e["user"], e["action"], e["kind"], e["why"]) for e in list_audit(s)]
    assert audit == [("operator", "grant_credit", "customer", "apology for the outage")]


@pytest.mark.parametrize(("amount", "reason", "field"), [("0", "goodwill", "amount"), ("-5", "goodwill", "amount"),
                                                         ("ten", "goodwill", "amount"), ("5.00", "  ", "reason")])
def test_a_bad_grant_is_refused_naming_the_field(wallet_db: Database, amount: str, reason: str, field: str) -> None:
    at = grant(carol("operator"), amount, reason)
    [error] = texts(at, "error")
    assert error.startswith(f"{field}: "), error
    assert balance(wallet_db) == []
    with wallet_db.read_session() as s:
        assert list_audit(s) == []


def test_a_viewer_sees_the_wallet_but_cannot_grant(wallet_db: Database) -> None:
    at = carol("viewer")
    assert any("Granting credit and changing the budget need the operator role; you are signed in as a viewer."
               in c for c in texts(at, "caption"))
    assert not [b for b in at.button if str(b.key).startswith("FormSubmitter:wal_")]
    viewer = {"name": "viewer", "role": "viewer"}
    with pytest.raises(PermissionDenied), wallet_db.session() as s:  # the engine refuses them too
        wallet_changes.grant_credit(s, viewer, CUSTOMER, "10", "by the back door", clock=TestClock(START))
    assert balance(wallet_db) == []


def test_the_ledger_pages_through_the_entries(wallet_db: Database) -> None:
    with wallet_db.session() as s:
        operator = {"name": "operator", "role": "operator"}
        for n in range(console_wallet.LEDGER_PAGE + 3):
            wallet_changes.grant_credit(s, operator, CUSTOMER, f"{n + 1}.00", f"grant number {n + 1}",
                                        clock=TestClock(START))
    at = carol("viewer")
    first = ledger(at)
    assert len(first) == console_wallet.LEDGER_PAGE and first["Amount"].iloc[0] == "$1.00"
    at.button(key="wal_next").click().run()
    later = ledger(at)
    assert list(later["Amount"]) == ["$21.00", "$22.00", "$23.00"]
    assert "Page 2, 3 entries, oldest first." in texts(at, "caption")
    at.button(key="wal_prev").click().run()
    assert ledger(at)["Amount"].iloc[0] == "$1.00"
    total = sum(Decimal(n + 1) for n in range(console_wallet.LEDGER_PAGE + 3))
    assert f"Balance **${total:,.2f}**" in "\n".join(texts(at, "markdown"))


def test_an_operator_sets_shows_and_removes_the_budget(wallet_db: Database) -> None:
    at = carol("operator")
    assert "No spend budget." in texts(at, "caption")
    at.text_input(key="wal_budget_amount").input("200")
    at.text_input(key="wal_budget_alerts").input("80, 50")
    at.checkbox(key="wal_budget_stop").check()
    at.text_input(key="wal_budget_why").input("asked by the customer")
    at.button(key="FormSubmitter:wal_budget-Save budget").click().run()
    assert not at.exception, at.exception
    assert "Budget set to $200.00 per billing period." in texts(at, "success")
    markdown = "\n".join(texts(at, "markdown"))
    assert ("Budget **$200.00** per billing period · alerts at 50 %, 80 % · stops metered use when spent"
            in markdown)
    assert any(c.startswith("Spent $") and "alerts reached: none yet" in c for c in texts(at, "caption"))
    no_raw_data(at, "Customers with a budget")

    at.text_input(key="wal_budget_amount").input("0")
    at.text_input(key="wal_budget_why").input("a typo")
    at.button(key="FormSubmitter:wal_budget-Save budget").click().run()
    assert [e for e in texts(at, "error") if e.startswith("amount: ")]
    with wallet_db.read_session() as s:
        assert sales.budget_status(s, CUSTOMER)["amount"] == "200.00"  # type: ignore[index]

    at.text_input(key="wal_budget_why").input("no longer needed")
    at.button(key="FormSubmitter:wal_budget-Remove budget").click().run()
    assert "Budget removed." in texts(at, "success")
    assert "No spend budget." in texts(at, "caption")
    with wallet_db.read_session() as s:
        assert sales.budget_status(s, CUSTOMER) is None
        audit = [(e["action"], e["why"]) for e in list_audit(s)]
    assert sorted(audit) == [("delete_budget", "no longer needed"), ("set_budget", "asked by the customer")]


@pytest.fixture
def token_db(tmp_path, monkeypatch) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    """Tina Tokens (US) on a token catalog's hard-stop plan (tests/credits/test_tokens.py's)."""
    url = f"sqlite:///{tmp_path}/tokens.db"
    clock = TestClock(START)
    (tmp_path / "tokens.yaml").write_text(TOKEN_CATALOG)
    system = build_system(Settings(database_url=url), clock=clock)
    with system.db.session() as s:
        sales.publish_catalog(s, str(tmp_path / "tokens.yaml"), "demo", clock=clock)
        sales.create_customer(s, {"id": "cus_tina", "name": "Tina Tokens", "email": "tina@tokens.example",
                                  "country": "US"}, clock=clock)
    with system.db.session() as s:
        sales.create_subscription(s, "cus_tina", "stop", clock=clock, trial_days=0)
        seed_demo(s, clock=clock)
    system.drain()
    system.db.dispose()
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    monkeypatch.delenv("BILLING_TEST_CLOCK", raising=False)
    db = Database(url)
    yield db
    db.dispose()


def test_an_operator_grants_tokens_to_a_token_wallet_with_a_reason(token_db: Database) -> None:
    at = page(signed_in("operator"), "Customers")
    at.text_input(key="cust_search").input("tina").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="wal_unit").options == ["USD (paid invoices)", "tokens (burned by usage)"]
    at.selectbox(key="wal_unit").select("tokens")
    grant(at, "0", "launch goodwill")  # refused naming the field, nothing written
    assert [e for e in texts(at, "error") if e.startswith("amount: ")]
    with token_db.read_session() as s:
        assert credits.wallet(s, "cus_tina", datetime.now(UTC))["balances"] == []
    at.selectbox(key="wal_unit").select("tokens")
    grant(at, "500", "launch goodwill")
    assert "Granted 500 tokens: launch goodwill." in texts(at, "success")
    assert "Balance **500 tokens** · available now 500 tokens" in "\n".join(texts(at, "markdown"))
    with token_db.read_session() as s:
        assert [(b["unit"], b["balance"]) for b in credits.wallet(s, "cus_tina", datetime.now(UTC))["balances"]] == [
            ("tokens", "500")]
        audit = [(e["action"], e["why"], e["details"].get("unit")) for e in list_audit(s)]
    assert audit == [("grant_credit", "launch goodwill", "tokens")]
