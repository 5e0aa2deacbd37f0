"""In headless Chromium, on a system whose stored test clock stands at Nov 2 2026 (far from the
day the test runs): the Overview and the customer card count from the engine's today, and an
operator pauses a subscription from the card, then withdraws the pause. Screenshots in
test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store.clock import StoredClock
from tests.console import scenario
from tests.ui.test_browser import ARTIFACTS, console_on, signed_in

pytestmark = pytest.mark.slow


@pytest.fixture
def clocked_console(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/clocked.db"
    system = scenario.build(url)
    StoredClock(system.db, scenario.END)  # what `billing serve --test-clock` keeps in the database
    system.db.dispose()
    with console_on(url) as console:
        yield console


def test_an_operator_pauses_on_the_engine_clock(clocked_console: str) -> None:
    with signed_in(clocked_console, "operator", "pause-failure.png") as (page, expect):
        page.get_by_test_id("stRadioGroup").get_by_text("Overview", exact=True).click()
        expect(page.get_by_text("Today is Nov 2, 2026 on the engine's clock.")).to_be_visible()
        expect(page.get_by_test_id("stJson")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "9-overview-engine-clock.png"), full_page=True)

        page.get_by_test_id("stRadioGroup").get_by_text("Customers", exact=True).click()
        page.get_by_label("Search by id, name or email").fill("builder")
        page.get_by_label("Search by id, name or email").press("Enter")
        expect(page.get_by_text("Next invoice on Dec 1, 2026 (in 29 days)")).to_be_visible()
        page.get_by_text("Pause", exact=True).click()
        page.get_by_label("Why (recorded in the audit)").fill("closed for the winter")
        page.get_by_role("button", name="Apply").click()
        expect(page.get_by_text("Pauses on Dec 1, 2026, when the period paid for ends.")).to_be_visible()
        expect(page.get_by_text("pauses at period end")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "10-customer-pause.png"), full_page=True)

        page.get_by_text("Resume", exact=True).click()
        page.get_by_label("Why (recorded in the audit)").fill("reopened")
        page.get_by_role("button", name="Apply").click()
        expect(page.get_by_text("The pause is withdrawn: the subscription renews as usual.")).to_be_visible()
