"""The Overview and a demo customer's card in headless Chromium: the figures beside their
charts, then why an invoice line has its amount, why access was denied and what an email said
and why it was sent. Screenshots in test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console import scenario
from tests.ui.test_browser import ARTIFACTS, _choose, console_on, signed_in

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_console(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/business.db"
    scenario.build(url).db.dispose()
    with console_on(url) as console:
        yield console


def test_overview_and_a_customer_card_explain_the_business(demo_console: str) -> None:
    with signed_in(demo_console, "viewer", "business-failure.png") as (page, expect):
        page.get_by_test_id("stRadioGroup").get_by_text("Overview", exact=True).click()
        expect(page.get_by_role("heading", name="Revenue by month")).to_be_visible()
        expect(page.get_by_test_id("stMetricLabel").first).to_be_visible()
        expect(page.locator(".vega-embed").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "5-overview.png"), full_page=True)

        page.get_by_test_id("stRadioGroup").get_by_text("Customers", exact=True).click()
        page.get_by_label("Search by id, name or email").fill("ada")
        page.get_by_label("Search by id, name or email").press("Enter")
        expect(page.get_by_text("Ada Lovelace", exact=True)).to_be_visible()
        _choose(page, "Invoice", "INV-2026-000001")
        expect(page.get_by_text("Seats: 3 × 10.00 USD = 30.00 USD.")).to_be_visible()
        expect(page.get_by_text("promotion rule edu-50 of ruleset promotions, version 1").first).to_be_visible()
        why = page.get_by_test_id("stTable")
        expect(why.get_by_text("Access to sso was denied by access rule access/suspended-read-only; "
                               "the dunning state is suspended.").first).to_be_visible()
        expect(why.get_by_text("invoice_issued was sent because rule invoice-issued of ruleset "
                               "notifications, version 1 acted on the event invoice.finalized.").first).to_be_visible()
        _choose(page, "Show what was sent", "Oct 1, 2026 09:00 UTC · invoice_issued · Email")
        expect(page.get_by_text("Invoice INV-2026-000001 for $37.92").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "6-customer-card.png"), full_page=True)
