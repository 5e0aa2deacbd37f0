"""The customer page with Stripe as the provider, in headless Chromium: "Update payment method"
goes to Stripe Checkout in setup mode (here the fake Stripe's page, tests/payments/fake_stripe.py),
the card comes back through the session's SetupIntent, and the open invoice is paid with it by
a PaymentIntent. The page's CSP must let the form go there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_missing
from tests.payments.conftest import Server
from tests.payments.fake_stripe import FakeStripe, create_fake_stripe
from tests.portal.conftest import Engine, RawInbox, portal_link, serving
from tests.ui.test_browser import ARGS, CHROMIUM

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "portal"

pytestmark = pytest.mark.slow


@pytest.fixture
def stripe() -> Iterator[tuple[FakeStripe, Server]]:
    state = FakeStripe()
    server = Server(create_fake_stripe(state)).start()
    yield state, server
    server.stop()


@pytest.fixture
def stripe_engine(tmp_path: Any, stripe: tuple[FakeStripe, Server], inbox: tuple[RawInbox, str]) -> Iterator[Engine]:
    with serving(tmp_path, inbox, psp_provider="stripe", stripe_api_key="sk_test_local",
                 stripe_webhook_secret="whsec_test", stripe_api_base=stripe[1].url) as engine:
        yield engine


def test_a_card_saved_on_stripe_checkout_pays_the_open_invoice(stripe_engine: Engine,
                                                               stripe: tuple[FakeStripe, Server]) -> None:
    if not Path(CHROMIUM).exists():
        service_missing(f"Chromium at {CHROMIUM}", "not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    engine, (state, server) = stripe_engine, stripe
    engine.customer("cus_st", name="Ada Lovelace", country="CH", plan="pro", card="none")
    invoice = engine.invoices("cus_st")[0]
    assert invoice["status"] == "finalized"
    link = portal_link(next(m for m in engine.inbox.to("cus_st@example.com") if invoice["number"] in m.subject).text)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)
        try:
            page.goto(link)
            page.get_by_role("button", name="Update payment method").click()
            page.get_by_label("Card number").fill("4242 4242 4242 4242")
            assert page.url.startswith(f"{server.url}/checkout/cs_test_")
            page.get_by_role("button", name="Save card").click()
            expect(page.locator("#notice")).to_have_text(
                "Your new payment method (card 4242) is saved, and 1 open invoice(s) were paid with it.")
            # Stored by its PaymentMethod id; the last four digits as Stripe said them.
            expect(page.locator("#payment-method")).to_have_text("card ending 4242")
            page.screenshot(path=str(ARTIFACTS / "stripe-saved-and-paid.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "stripe-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    [session] = state.sessions.values()
    assert (session["mode"], session["client_reference_id"], session["status"]) == ("setup", "cus_st", "complete")
    [intent] = state.intents.values()  # the invoice, charged off-session with the saved card
    assert intent["customer"] == session["customer"] and intent["status"] == "succeeded"
    engine.system.drain()
    assert engine.admin.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "paid"
