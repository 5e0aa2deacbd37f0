"""The coupon form's "usage so far" (issue 18): redemptions of the code in the catalog being
edited, counted by sales; a limit below them is refused in place."""

from __future__ import annotations

from typing import Any

from engine import sales
from engine.catalog import load_catalog_text
from engine.clock import SystemClock
from engine.store import Database
from tests.ui.conftest import page, texts
from tests.ui.test_builders import click, fill, open_file, yaml

# Another catalog with its own FLAT10: its redemptions are not the saas catalog's.
OTHER: dict[str, Any] = {
    "catalog": "other-shop",
    "currency": "USD",
    "coupons": {"FLAT10": {"amount_off": "10.00", "duration": "once"}},
    "plans": {
        "starter": {
            "name": "Starter",
            "interval": "month",
            "prices": [{"id": "base", "model": "flat", "amount": "9.00"}],
        }
    },
}


def redeem(db: Database) -> None:
    """FLAT10 redeemed twice in acme-analytics (at sign-up, then on a running subscription) and
    once in other-shop, as `POST /v1/subscriptions {coupon}` and `.../{id}/coupon` do."""
    clock = SystemClock()
    with db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "demo", clock=clock)
        sales.publish_catalog(s, OTHER, "demo", clock=clock)
        for cid in ("cus_a", "cus_b", "cus_c"):
            sales.create_customer(s, {"id": cid, "name": cid, "email": f"{cid}@x.example"}, clock=clock)
    with db.session() as s:
        sales.create_subscription(s, "cus_a", "pro", clock=clock, coupon="FLAT10", trial_days=0)
        later = sales.create_subscription(s, "cus_b", "pro", clock=clock, trial_days=0)
        sales.create_subscription(s, "cus_c", "starter", clock=clock, coupon="FLAT10")
    with db.session() as s:
        sales.apply_coupon(s, later["id"], "FLAT10", clock=clock)
    with db.read_session() as s:
        assert sales.coupon_redemptions(s, "acme-analytics") == {"FLAT10": 2}
        assert sales.coupon_redemptions(s, "other-shop") == {"FLAT10": 1}


def test_the_coupon_form_shows_this_catalogs_redemptions_and_refuses_a_lower_limit(app, console_db) -> None:  # type: ignore[no-untyped-def]
    redeem(console_db)
    at = page(app("editor"), "Promotions")
    at.radio(key="pr_form").set_value("Coupon").run()
    open_file(at, "pr_source_catalog", "file: saas.yaml")
    at.selectbox(key="cp_pick").select("FLAT10").run()
    assert "**FLAT10**: 2 used (no limit) so far" in texts(at, "markdown")
    fill(at, cp_edit_max_redemptions="100")
    click(at, "cp_update")
    assert "Coupon FLAT10 written to the draft's YAML." in texts(at, "success")
    assert load_catalog_text(yaml(at)).coupon("FLAT10").max_redemptions == 100
    assert "**FLAT10**: 2 of 100 used so far" in texts(at, "markdown")
    table = next(d.value for d in at.dataframe if "used so far" in d.value.columns)
    assert list(table[table["code"] == "FLAT10"]["used so far"]) == ["2 of 100 used"]
    # Below the two redemptions: marked at the limit, nothing written.
    before = yaml(at)
    fill(at, cp_edit_max_redemptions="1")
    click(at, "cp_update")
    assert "2 redemptions so far: the limit cannot be below 2" in texts(at, "error")
    assert yaml(at) == before
    assert yaml(at).startswith("# A SaaS analytics product")  # comments kept
