"""The console's Inspect page in headless Chromium: a suspended customer, picked by name, has a
decision log that says in words why they were denied and dunned, beside their dunning state
and messages (no "not available in this build", no JSON block, no internal id)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import dunning, sales
from engine.config import Settings
from engine.system import build_system
from tests.ui.test_browser import ARTIFACTS, _choose, console_on, signed_in

pytestmark = pytest.mark.slow


@pytest.fixture
def inspected_console(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/inspect.db"
    system = build_system(Settings(database_url=url, test_clock="2026-11-01T09:00:00Z", access_denial_buffer_ms=0))
    now = datetime(2026, 11, 1, 9, tzinfo=UTC)
    with system.db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "test", clock=system.clock)
        sales.create_customer(s, {"id": "cus_late", "email": "l@x.io", "name": "Late Ltd"}, clock=system.clock)
        sales.create_subscription(s, "cus_late", "pro", clock=system.clock)
    with system.db.session() as s:
        dunning.set_state(s, "cus_late", "suspended", reason="invoice overdue 14 days", now=now)
    denied = system.access.check("cus_late", "sso")
    assert denied.reason == "payment_overdue" and denied.decision_id
    system.db.dispose()
    with console_on(url) as console:
        yield console


def test_inspect_shows_why_a_customer_was_denied_and_dunned(inspected_console: str) -> None:
    with signed_in(inspected_console, "viewer", "inspect-failure.png") as (page, expect):
        page.get_by_text("Inspect", exact=True).click()
        expect(page.get_by_role("heading", name="Inspect")).to_be_visible()
        _choose(page, "Customer", "Late Ltd · l@x.io")  # a person, not an id
        expect(page.get_by_text("Decision log", exact=True)).to_be_visible()
        table = page.get_by_test_id("stTable").last
        expect(table.get_by_text("the account is suspended by dunning (a payment is overdue)")).to_be_visible()
        expect(table.get_by_text("invoice overdue 14 days")).to_be_visible()
        expect(page.get_by_text("not available in this build")).to_have_count(0)
        expect(page.get_by_test_id("stJson")).to_have_count(0)  # no raw data for business users
        expect(page.get_by_text("cus_late")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "4-inspect-decisions.png"), full_page=True)
