"""The Overview and a demo customer's card in headless Chromium: the figures beside their
charts, then why an invoice line has its amount, why access was denied and what an email said
and why it was sent (issue 18, browser task 8), the denial and the line checked against what
the API says of them (`GET /v1/customers/{id}/decisions`, `GET /v1/invoices/{id}`); the Audit
& users page and the Access tester on the same data. Screenshots in test-artifacts/console/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.api import create_app, create_key
from engine.config import Settings
from engine.console.explain import ACCESS_REASONS
from engine.system import build_system
from tests.api.conftest import serve
from tests.console import scenario
from tests.ui.test_browser import ARTIFACTS, _choose, console_on, signed_in

pytestmark = pytest.mark.slow


@dataclass
class Demo:
    console: str
    api: httpx.Client  # the engine's API on the same database, with an admin key


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    url = f"sqlite:///{tmp_path}/business.db"
    scenario.build(url).db.dispose()
    system = build_system(Settings(database_url=url))
    with system.db.session() as s:
        _, admin = create_key(s, "admin", now=system.clock.now())
    api_app = create_app(system.api_context())
    with console_on(url) as console, serve(api_app) as api_url, httpx.Client(
            base_url=api_url, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as api:
        yield Demo(console, api)
    system.db.dispose()


def _denial(api: httpx.Client, customer_id: str) -> dict[str, Any]:
    """The customer's one denial in the decision log, as the API says it."""
    r = api.get(f"/v1/customers/{customer_id}/decisions", params={"kind": "access"})
    assert r.status_code == 200, r.text
    [denied] = [d for d in r.json()["items"] if d["outcome"] == "deny"]
    return dict(denied)


def _line(api: httpx.Client, customer_id: str, number: str, name: str) -> tuple[dict[str, Any], str]:
    """The invoice line `name` of invoice `number`, from `GET /v1/invoices/{id}`, and its currency."""
    listed = api.get(f"/v1/customers/{customer_id}/invoices").json()["items"]
    [invoice_id] = [i["id"] for i in listed if i["number"] == number]
    invoice = api.get(f"/v1/invoices/{invoice_id}").json()
    [line] = [ln for ln in invoice["lines"] if ln["name"] == name]
    return line, invoice["currency"]


def test_overview_and_a_customer_card_explain_the_business(demo: Demo) -> None:
    denied = _denial(demo.api, "cus_ada")
    seats, currency = _line(demo.api, "cus_ada", "INV-2026-000001", "Seats")
    # The sentences the page must show for them: the API's feature, rule and reason; the
    # line's quantity and amount (the unit price between them is the page's own division).
    denial = (f"Access to {denied['subject']} was denied by access rule {denied['rule']}: "
              f"{ACCESS_REASONS[denied['reason']]}; the dunning state is suspended.")
    amount = Decimal(seats["amount"]).quantize(Decimal("0.01"))
    line = re.compile(rf"^Seats: {Decimal(seats['quantity']):f} × [0-9.,]+ {currency} = {amount:,} {currency}\.$")
    with signed_in(demo.console, "viewer", "business-failure.png") as (page, expect):
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
        expect(page.get_by_text(line)).to_be_visible()  # what the API says of the line
        expect(page.get_by_text("Seats: 3 × 10.00 USD = 30.00 USD.")).to_be_visible()
        expect(page.get_by_text("promotion rule edu-50 of ruleset promotions, version 1").first).to_be_visible()
        why = page.get_by_test_id("stTable")
        expect(why.get_by_text(denial, exact=True).first).to_be_visible()
        assert denied["subject"] == "sso" and denied["reason"] == "payment_overdue", denied
        expect(why.get_by_text("invoice_issued was sent because rule invoice-issued of ruleset "
                               "notifications, version 1 acted on the event invoice.finalized.").first).to_be_visible()
        _choose(page, "Show what was sent", "Oct 1, 2026 09:00 UTC · invoice_issued · Email")
        expect(page.get_by_text("Invoice INV-2026-000001 for $37.92").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "6-customer-card.png"), full_page=True)


def test_the_audit_page_and_the_access_tester_on_the_demo_data(demo: Demo) -> None:
    denied = _denial(demo.api, "cus_ada")
    with signed_in(demo.console, "admin", "audit-access-failure.png") as (page, expect):
        page.get_by_test_id("stRadioGroup").get_by_text("Audit & users", exact=True).click()
        expect(page.get_by_role("heading", name="Audit & users")).to_be_visible()
        page.get_by_label("Why (kept in the audit)").fill("a reviewer for the audit")
        page.get_by_label("User name").fill("auditor")
        page.get_by_label("First password (8 characters or more)").fill("auditor-pass")
        page.get_by_role("button", name="Add user").click()
        # the audit table keeps the why (a canvas grid: its cells are in the page, not "visible")
        expect(page.get_by_test_id("stDataFrame").get_by_text("a reviewer for the audit", exact=True)).to_be_attached()
        page.screenshot(path=str(ARTIFACTS / "7-audit-users.png"), full_page=True)

        page.get_by_test_id("stRadioGroup").get_by_text("Access tester", exact=True).click()
        expect(page.get_by_role("heading", name="Access tester")).to_be_visible()
        _choose(page, "Customer", "Ada Lovelace · ada@uni.example")
        page.get_by_label("Feature").fill(denied["subject"])
        page.get_by_label("Feature").press("Enter")
        page.get_by_role("button", name="Check").click()
        # The tester decides now as the API did then: denied, for the same reason.
        expect(page.get_by_text(f"Denied: {denied['reason']}", exact=True)).to_be_visible()
        expect(page.get_by_text(f"Rule {denied['rule']} asked to deny ({denied['reason']}).")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "8-access-tester.png"), full_page=True)
