"""The customer page in headless Chromium (tests/ui/test_browser.py's browser and arguments): a
customer who pays by bank transfer opens the link of their invoice email, downloads the PDF,
saves a card on the sandbox provider's hosted form, pays the open invoice with it and turns
offers off. Screenshots go to test-artifacts/portal/.

Fails instead of skipping when the browser is missing and BILLING_REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import messaging
from tests.conftest import service_missing
from tests.portal.conftest import Engine, pdf_text, portal_link
from tests.ui.test_browser import ARGS, CHROMIUM

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "portal"

pytestmark = pytest.mark.slow


def test_the_customer_page_pays_an_invoice_with_a_new_card(engine: Engine) -> None:
    if not Path(CHROMIUM).exists():
        service_missing(f"Chromium at {CHROMIUM}", "not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        service_missing("the playwright package", "not installed (pip install -e '.[dev]')")
    engine.customer("cus_web", name="Grace Hopper", country="CH", plan="pro", quantity=2)  # pays by transfer
    invoice = engine.invoices("cus_web")[0]
    assert invoice["status"] == "finalized" and invoice["collection"]["status"] == "open"
    mail = next(m for m in engine.inbox.to("cus_web@example.com") if invoice["number"] in m.subject)
    link = portal_link(mail.text)
    due = f"${invoice['amount_due']}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 1200}, accept_downloads=True)
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)
        try:
            page.goto(link)
            expect(page.get_by_role("heading", name="Your billing")).to_be_visible()
            expect(page.get_by_text("Grace Hopper")).to_be_visible()
            row = page.locator(f"#open-{invoice['id']}")
            expect(row).to_contain_text(invoice["number"])
            expect(row).to_contain_text(due)
            expect(page.locator("#payment-method")).to_have_text("Bank transfer")
            page.screenshot(path=str(ARTIFACTS / "1-open-invoice.png"), full_page=True)

            # The PDF, as the customer downloads it.
            with page.expect_download() as download:
                page.locator(f"#invoice-{invoice['id']}").get_by_role("link", name="PDF").click()
            text = pdf_text(Path(download.value.path()).read_bytes())
            assert invoice["number"] in text and f"Total {due}" in text

            # A card, entered on the provider's own page.
            page.get_by_role("button", name="Update payment method").click()
            expect(page.get_by_role("heading", name="Add a card")).to_be_visible()
            assert page.url.startswith(engine.psp_url)
            page.get_by_label("Card number").fill("4242 4242 4242 4242")
            page.screenshot(path=str(ARTIFACTS / "2-hosted-card-form.png"), full_page=True)
            page.get_by_role("button", name="Save card").click()
            expect(page.locator("#notice")).to_have_text("Your new payment method (card 4242) is saved.")
            expect(page.locator("#payment-method")).to_have_text("card ending 4242")
            assert page.url.startswith(engine.url)

            # Pay the open invoice with it.
            row.get_by_role("button", name=f"Pay {due}").click()
            expect(page.locator("#notice")).to_have_text(f"Thank you: invoice {invoice['number']} is paid.")
            expect(page.locator("#nothing-due")).to_be_visible()
            expect(page.locator(f"#invoice-{invoice['id']} .status")).to_have_text("paid")
            page.screenshot(path=str(ARTIFACTS / "3-paid.png"), full_page=True)

            # No more offers, please.
            page.get_by_label("Offers and upgrades").uncheck()
            page.get_by_role("button", name="Save preferences").click()
            expect(page.locator("#notice")).to_have_text("Your notification preferences are saved.")
            expect(page.get_by_label("Offers and upgrades")).not_to_be_checked()
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()

    engine.system.drain()
    paid = engine.admin.get(f"/v1/invoices/{invoice['id']}").json()
    assert paid["status"] == "paid" and paid["collection"]["payments"][-1]["method"] == "card"
    with engine.system.db.read_session() as s:
        assert messaging.get_preferences(s, "cus_web").opted_out_categories == frozenset({"offers"})
