"""End to end in headless Chromium (Debian's package, driven by playwright): sign in, change a
tier price, simulate, see the revenue delta; a synthetic cohort at zero usage is warned about,
typical usage shows the change. Screenshots go to test-artifacts/console/.

Fails instead of skipping when the browser is missing and BILLING_REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.console import run_console
from engine.store import Database
from tests.conftest import service_missing

CHROMIUM = os.environ.get("BILLING_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CSV = "customer_id,plan,quantity,segment,api_calls\na,pro,3,smb,15000\nb,free,,smb,800\nc,enterprise,10,ent,0\n"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(process: Any) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except Exception:
        process.kill()


@pytest.fixture
def console_url(tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/e2e.db"
    db = Database(url)
    db.migrate()
    db.dispose()
    port = _free_port()
    out = io.StringIO()
    process = run_console(port, database_url=url, out=out)
    try:
        printed = out.getvalue()
        assert f"console: http://127.0.0.1:{port}" in printed
        assert "sign in as editor / editor-demo (editor)" in printed
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


@contextmanager
def console_on(database_url: str) -> Iterator[str]:
    """The console on a prepared database, with the demo users seeded; its URL, stopped after."""
    port = _free_port()
    process = run_console(port, database_url=database_url, out=io.StringIO(), seed_demo=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


@contextmanager
def signed_in(url: str, user: str, failure_shot: str) -> Iterator[tuple[Any, Any]]:
    """Headless Chromium signed in to the console as the demo `user` (password `user-demo`):
    the page and playwright's `expect`; a screenshot `failure_shot` when the block fails."""
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
            page.goto(url)
            page.get_by_label("User name").fill(user)
            page.get_by_role("textbox", name="Password").fill(f"{user}-demo")
            page.get_by_role("button", name="Sign in").click()
            yield page, expect
        except Exception:
            page.screenshot(path=str(ARTIFACTS / failure_shot), full_page=True)
            raise
        finally:
            browser.close()


# Counts the console's script runs: Streamlit marks its root `data-test-script-state`
# "running" while a rerun draws and "notRunning" once it is done; each change away from
# idle is a run starting. Installed with page.add_init_script before the first goto.
RUN_COUNTER = """
window.__runs = 0;
new MutationObserver(records => {
  for (const r of records) if (r.oldValue === "notRunning" || r.oldValue === "initial") window.__runs++;
}).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                      attributeFilter: ["data-test-script-state"]});
"""
_IDLE = "document.querySelector('[data-testid=stApp]')?.dataset.testScriptState === 'notRunning'"


def _idle(page: Any) -> None:
    """Wait until no script run is drawing the page."""
    page.wait_for_function(_IDLE)


def _runs(page: Any) -> int:
    """How many script runs the console has started on this page (RUN_COUNTER), once idle."""
    _idle(page)
    return int(page.evaluate("window.__runs"))


def _rerun_done(page: Any, before: int, timeout: float = 5_000) -> bool:
    """Wait for a run started after `_runs` said `before` to finish; False when none started
    within `timeout` ms (the input did not change, so Streamlit had nothing to rerun)."""
    try:
        page.wait_for_function(f"n => window.__runs > n && {_IDLE}", arg=before, timeout=timeout)
    except Exception:  # playwright's TimeoutError: no run started
        return False
    return True


def _choose(page: Any, box: str, option: str) -> None:
    """Pick an option of a select box. A Streamlit rerun that lands just after the click
    draws the box again and closes its list (seen under load), before the option shows or
    between its showing and the click (CI, test_browser_builders' rollback): open it again then."""
    for _ in range(5):
        page.get_by_role("combobox", name=box, exact=True).click()
        choice = page.get_by_role("option", name=option, exact=True)
        try:
            choice.wait_for(state="visible", timeout=5_000)
            choice.click(timeout=5_000)  # the list can also close between showing and the click
        except Exception:  # the list closed before it showed or was clicked: open it again
            page.keyboard.press("Escape")
            continue
        return
    raise AssertionError(f"the {box!r} list never showed {option!r}")


def test_sign_in_change_tier_simulate(console_url: str) -> None:
    if not Path(CHROMIUM).exists():
        service_missing(f"Chromium at {CHROMIUM}", "not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        service_missing("the playwright package", "not installed (pip install -e '.[dev]')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        try:
            page.goto(console_url)
            expect(page.get_by_text("Sign in to edit, simulate and publish")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "1-sign-in.png"))
            page.get_by_label("User name").fill("editor")
            page.get_by_role("textbox", name="Password").fill("editor-demo")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Editor")).to_be_visible()

            # Open the SaaS example catalog.
            _choose(page, "Start from", "file: saas.yaml")
            page.get_by_test_id("stButton").get_by_role("button", name="Open", exact=True).click()
            expect(page.get_by_text("Valid: catalog acme-analytics")).to_be_visible()

            # Change Pro's second API tier from 0.002 to 0.003 with the form.
            page.get_by_text("Change a tier", exact=True).click()
            _choose(page, "Tier", "2")
            unit = page.get_by_label("Unit amount")
            unit.fill("0.003")
            unit.press("Enter")
            page.get_by_role("button", name="Apply tier change").click()
            expect(page.get_by_text("Applied to the YAML.")).to_be_visible()
            expect(page.locator("textarea").first).to_have_value(
                __import__("re").compile(r'up_to: 100000, unit_amount: "0\.003"')
            )
            page.screenshot(path=str(ARTIFACTS / "2-tier-changed.png"), full_page=True)

            # Simulate three customers for 12 months: +5.00 a month for the Pro customer.
            page.get_by_text("Simulate", exact=True).click()
            expect(page.get_by_role("heading", name="What-if simulation")).to_be_visible()
            page.get_by_text("CSV", exact=True).click()
            pasted = page.get_by_label("…or paste it")
            pasted.fill(CSV)
            pasted.press("Control+Enter")
            page.get_by_role("button", name="Run simulation").click()
            expect(page.get_by_text("Revenue delta: +60.00 USD")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "3-simulated.png"), full_page=True)

            # A synthetic cohort at zero usage cannot show a tier change: the console says so.
            page.get_by_text("Synthetic cohort", exact=True).click()
            count = page.get_by_role("spinbutton", name="Customers", exact=True)
            count.fill("40")
            count.press("Enter")
            page.get_by_text("None (zero usage)", exact=True).click()
            page.get_by_role("button", name="Run simulation").click()
            expect(page.get_by_text("Revenue delta: +0.00 USD")).to_be_visible()
            expect(page.get_by_text("cannot exercise: the draft changes tier 2 of price 'calls'")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "4-zero-usage-warning.png"), full_page=True)

            # Typical usage (the default) reaches tier 2: the change shows.
            page.get_by_text("Typical for each plan", exact=True).click()
            page.get_by_role("button", name="Run simulation").click()
            expect(page.get_by_text(__import__("re").compile(r"Revenue delta: \+[1-9][0-9,]*\.\d\d USD"))).to_be_visible()
            expect(page.get_by_text("cannot exercise")).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / "5-typical-usage.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
