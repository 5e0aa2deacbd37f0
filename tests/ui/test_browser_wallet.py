"""In headless Chromium: an operator grants credit with a reason on a customer's card, and the
product sees the balance over HTTP (GET /v1/customers/{id}/wallet, product key); a zero amount
is refused naming the field with nothing granted. Screenshots in test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.api import create_app, create_key
from engine.config import Settings
from engine.system import build_system
from tests.ui.test_browser import ARTIFACTS, console_on, signed_in
from tests.ui.test_console_wallet import CUSTOMER, START, wallet_store

pytestmark = pytest.mark.slow


@pytest.fixture
def wallet_console(tmp_path: Path) -> Iterator[tuple[str, TestClient]]:
    """The console and the HTTP API on one database: Carol Credit on Pro, no credit yet."""
    url = f"sqlite:///{tmp_path}/wallet.db"
    wallet_store(url)
    system = build_system(Settings(database_url=url))
    with system.db.session() as s:
        _, product = create_key(s, "product", now=START)
    with console_on(url) as console, TestClient(create_app(system.api_context())) as api:
        api.headers["Authorization"] = f"Bearer {product}"
        yield console, api
    system.db.dispose()


def _wallet(api: TestClient) -> dict[str, object]:
    r = api.get(f"/v1/customers/{CUSTOMER}/wallet")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_an_operator_grants_credit_in_the_browser_and_the_api_sees_it(
        wallet_console: tuple[str, TestClient]) -> None:
    console, api = wallet_console
    assert _wallet(api)["balances"] == []
    with signed_in(console, "operator", "wallet-failure.png") as (page, expect):
        page.get_by_test_id("stRadioGroup").get_by_text("Customers", exact=True).click()
        page.get_by_label("Search by id, name or email").fill("carol")
        page.get_by_label("Search by id, name or email").press("Enter")
        expect(page.get_by_text("No credit granted yet.")).to_be_visible()

        page.get_by_label("Amount (in the customer's currency)").fill("0")
        page.get_by_label("Reason (kept on the grant and in the audit)").fill("goodwill")
        page.get_by_role("button", name="Grant credit").click()
        expect(page.get_by_text("amount: above zero, not 0")).to_be_visible()
        assert _wallet(api)["balances"] == []  # refused: nothing granted

        page.get_by_label("Amount (in the customer's currency)").fill("40.00")
        page.get_by_label("Reason (kept on the grant and in the audit)").fill("apology for the outage")
        page.get_by_role("button", name="Grant credit").click()
        expect(page.get_by_text("Granted $40.00: apology for the outage.")).to_be_visible()
        expect(page.get_by_text("available now $40.00")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "13-wallet-granted.png"), full_page=True)

    wallet = _wallet(api)
    assert wallet["balances"] == [{"unit": "USD", "balance": "40.00", "available": "40.00", "pending": "0.00"}]
    [g] = wallet["grants"]  # type: ignore[misc]
    assert (g["source"], g["reason"], g["amount"], g["remaining"], g["created_by"]) == (
        "operator", "apology for the outage", "40.00", "40.00", "console:operator")
    assert datetime.fromisoformat(g["effective_at"]) <= datetime.now(UTC)
