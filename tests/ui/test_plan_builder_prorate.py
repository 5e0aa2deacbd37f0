"""The plan builder's proration setting (FORMATS §1 `prorate`, issue 18): written to the YAML
with the comments kept, read back when the plan loads, refused on a price billed for usage,
and the published plan charges a mid-period change by it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine import sales
from engine.catalog import load_catalog_text
from engine.clock import TestClock
from engine.store import Database
from tests.ui.conftest import page, texts
from tests.ui.test_builders import click, fill, open_file, yaml


def _team_plan(at, prorate: str):  # type: ignore[no-untyped-def]
    """A plan `team` of seats at 10.00 each, billed in advance, with `prorate` set."""
    fill(at, pb_id="team", pb_name="Team")
    click(at, "pb_add_price")
    fill(at, pb_p0_id="seats")
    at.selectbox(key="pb_p0_model").select("per_unit").run()
    fill(at, pb_p0_unit_amount="10.00")
    at.selectbox(key="pb_p0_prorate").select(prorate).run()
    return at


def test_the_plan_builder_sets_prorate_and_reads_it_back(app) -> None:  # type: ignore[no-untyped-def]
    at = page(app("editor"), "Plan builder")
    open_file(at, "pb_source", "file: saas.yaml")
    _team_plan(at, "false")
    click(at, "pb_write")
    assert "Plan team written to the draft's YAML." in texts(at, "success")
    text = yaml(at)
    assert text.startswith("# A SaaS analytics product")  # comments kept
    assert '- {id: seats, model: per_unit, prorate: false, unit_amount: "10.00"}' in text
    assert load_catalog_text(text).plan("team").prices[0].prorate is False
    # Loaded again for editing (after a new plan cleared the form), the setting is there.
    at.selectbox(key="pb_choice").select("(a new plan)").run()
    click(at, "pb_load")
    at.selectbox(key="pb_choice").select("team").run()
    click(at, "pb_load")
    assert at.selectbox(key="pb_p0_prorate").value == "false"


def test_prorate_on_a_usage_price_is_refused_in_place(app) -> None:  # type: ignore[no-untyped-def]
    at = page(app("editor"), "Plan builder")
    open_file(at, "pb_source", "file: saas.yaml")
    _team_plan(at, "true")
    at.selectbox(key="pb_p0_metric").select("api_calls").run()
    original = yaml(at)
    click(at, "pb_write")
    assert "only a price billed in advance prorates; this one is billed for usage" in texts(at, "error")
    assert yaml(at) == original


def _change_invoice(db: Database, text: str) -> list[tuple[str, str]]:
    """Publish the catalog, subscribe to team x 1, go 10 days into the period and take 2 seats:
    the change invoice's lines."""
    clock = TestClock(datetime(2026, 11, 1, 9, tzinfo=UTC))
    with db.session() as s:
        sales.publish_catalog(s, load_catalog_text(text), "demo", clock=clock)
        sales.create_customer(s, {"id": "cus_t", "name": "T", "email": "t@x.example"}, clock=clock)
    with db.session() as s:
        sid = sales.create_subscription(s, "cus_t", "team", clock=clock, trial_days=0)["id"]
    clock.set(clock.now() + timedelta(days=10))  # 20 of November's 30 days remain
    with db.session() as s:
        sales.change_subscription(s, sid, clock=clock, quantity=2)
    with db.read_session() as s:
        change = sales.subscription_invoices(s, sid)[-1]
    return [(x["price_id"], x["amount"]) for x in change["lines"]]


def test_the_published_plan_charges_a_change_in_full_when_it_does_not_prorate(app, console_db) -> None:  # type: ignore[no-untyped-def]
    at = page(app("editor"), "Plan builder")
    open_file(at, "pb_source", "file: saas.yaml")
    _team_plan(at, "false")
    click(at, "pb_write")
    # Prorated (the default) this would be -6.67 and +13.33: 20 of 30 days.
    assert _change_invoice(console_db, yaml(at)) == [("seats", "-10.00"), ("seats", "20.00")]


def test_the_published_plan_prorates_a_change_when_set(app, console_db) -> None:  # type: ignore[no-untyped-def]
    at = page(app("editor"), "Plan builder")
    open_file(at, "pb_source", "file: saas.yaml")
    _team_plan(at, "true")
    click(at, "pb_write")
    assert "prorate: true" in yaml(at)
    assert _change_invoice(console_db, yaml(at)) == [("seats", "-6.67"), ("seats", "13.33")]
