"""The console's Inspect page in headless Chromium: a suspended customer, picked by name, has a
decision log that says in words why they were denied and dunned, beside their dunning state
and messages (no "not available in this build", no JSON block, no internal id)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine import dunning, sales
from engine.config import Settings
from engine.console import run_console
from engine.system import build_system
from tests.conftest import service_missing
from tests.ui.test_browser import ARGS, ARTIFACTS, CHROMIUM, _choose, _free_port

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
    port = _free_port()
    process = run_console(port, database_url=url, out=io.StringIO(), seed_demo=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except Exception:
            process.kill()


def test_inspect_shows_why_a_customer_was_denied_and_dunned(inspected_console: str) -> None:
    if not Path(CHROMIUM).exists():
        service_missing(f"Chromium at {CHROMIUM}", "not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        service_missing("the playwright package", "not installed (pip install -e '.[dev]')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page: Any = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        try:
            page.goto(inspected_console)
            page.get_by_label("User name").fill("viewer")
            page.get_by_role("textbox", name="Password").fill("viewer-demo")
            page.get_by_role("button", name="Sign in").click()
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
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "inspect-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
