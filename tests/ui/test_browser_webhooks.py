"""In headless Chromium: a publisher registers a product webhook endpoint on the console's
Webhooks page and sees its signing secret once, replays a delivery from the log by its id, and
an unknown id is refused naming the field (issue 19's console door). Screenshots in
test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import webhooks
from engine.events import Envelope
from engine.store import Database, mark_processed
from tests.ui.test_browser import ARTIFACTS, console_on, signed_in

pytestmark = pytest.mark.slow


@pytest.fixture
def hooks_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Database]]:
    # The receiver here is on loopback over http: allowed only by this configuration.
    monkeypatch.setenv("BILLING_WEBHOOKS_ALLOW_HTTP", "true")
    monkeypatch.setenv("BILLING_WEBHOOKS_ALLOW_PRIVATE", "true")
    url = f"sqlite:///{tmp_path}/hooks.db"
    db = Database(url)
    db.migrate()
    with console_on(url) as console:
        yield console, db
    db.dispose()


def _a_delivery(db: Database) -> str:
    """An invoice event reaches the endpoint's log (the webhooks consumer's work, done here)."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with db.session() as s:
        [endpoint] = webhooks.list_endpoints(s)
        mark_processed(s, webhooks.CONSUMER, "evt_browser_1", at)
        webhooks.fan_out(s, Envelope(id="evt_browser_1", type="invoice.paid", customer_id="cus_1", time=at,
                                     properties={}))
    with db.read_session() as s:
        [delivery] = webhooks.list_deliveries(s, endpoint.id)
    return str(delivery["id"])


def test_a_publisher_registers_an_endpoint_and_replays_a_delivery(hooks_console: tuple[str, Database]) -> None:
    console, db = hooks_console
    with signed_in(console, "publisher", "webhooks-failure.png") as (page, expect):
        page.get_by_test_id("stRadioGroup").get_by_text("Webhooks", exact=True).click()
        page.get_by_label("URL (https)").fill("http://127.0.0.1:9/hooks")
        page.get_by_test_id("stMultiSelect").click()
        page.get_by_role("option", name="invoice.*", exact=True).click()
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Register").click()
        shown = page.get_by_text("Its signing secret, shown once: whsec_")
        expect(shown).to_be_visible()
        # Listed at once, with its delivery log (it said "No endpoint registered yet." until this run ended).
        expect(page.get_by_text("No endpoint registered yet.")).to_have_count(0)
        expect(page.get_by_text("No delivery yet.")).to_be_visible()
        with db.read_session() as s:
            [endpoint] = webhooks.list_endpoints(s)
        assert endpoint.event_types == ["invoice.*"] and endpoint.url == "http://127.0.0.1:9/hooks"
        page.screenshot(path=str(ARTIFACTS / "11-webhooks-registered.png"), full_page=True)

        delivery = _a_delivery(db)
        page.get_by_label("Delivery id to replay").fill(delivery)
        page.get_by_role("button", name="Replay delivery").click()
        expect(page.get_by_text(f"Replaying {delivery} as ")).to_be_visible()
        with db.read_session() as s:
            assert len(webhooks.list_deliveries(s, endpoint.id)) == 2

        page.get_by_label("Delivery id to replay").fill("wd_nothing")
        page.get_by_role("button", name="Replay delivery").click()
        expect(page.get_by_text("delivery_id", exact=False).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "12-webhooks-replayed.png"), full_page=True)
    with db.read_session() as s:
        assert len(webhooks.list_deliveries(s, endpoint.id)) == 2  # the refused replay wrote nothing
