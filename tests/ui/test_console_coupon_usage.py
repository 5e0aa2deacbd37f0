"""The coupon form's "usage so far" (issue 18): redemptions of the code in the catalog being
edited, counted by sales; a limit below them is refused in place."""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from engine import sales
from engine.catalog import load_catalog_text
from engine.console import seed_demo
from tests.api.conftest import Running, running  # noqa: F401 (the fixture `served` needs)
from tests.ui.conftest import APP, PASSWORDS, page, texts
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


@pytest.fixture
def served(running: Running, monkeypatch) -> Running:  # type: ignore[no-untyped-def]  # noqa: F811
    """The API's store, with the demo sign-ins, is the console's."""
    with running.system.db.session() as s:
        seed_demo(s, clock=running.system.clock)
    monkeypatch.setenv("BILLING_DATABASE_URL", str(running.system.db.engine.url))
    monkeypatch.delenv("BILLING_TEST_CLOCK", raising=False)
    return running


def redeem(api: Running) -> None:
    """Over HTTP: FLAT10 redeemed twice in acme-analytics, at sign-up (`POST /v1/subscriptions
    {coupon}`) and on a running subscription (`POST /v1/subscriptions/{id}/coupon`), and once
    in other-shop."""
    with api.system.db.session() as s:
        sales.publish_catalog(s, OTHER, "demo", clock=api.system.clock)
    with api.client(api.admin) as c:
        for cid in ("cus_a", "cus_b", "cus_c"):
            assert (
                c.post("/v1/customers", json={"id": cid, "name": cid, "email": f"{cid}@x.example"}).status_code == 201
            )
        for cid, plan, coupon in (("cus_a", "pro", "FLAT10"), ("cus_b", "pro", None), ("cus_c", "starter", "FLAT10")):
            body = {"customer_id": cid, "plan": plan, "trial_days": 0, **({"coupon": coupon} if coupon else {})}
            r = c.post("/v1/subscriptions", json=body)
            assert r.status_code == 201, r.text
            if cid == "cus_b":
                later = r.json()["id"]
        r = c.post(f"/v1/subscriptions/{later}/coupon", json={"coupon": "FLAT10"})
        assert r.status_code == 200, r.text
    with api.system.db.read_session() as s:
        assert sales.coupon_redemptions(s, "acme-analytics") == {"FLAT10": 2}
        assert sales.coupon_redemptions(s, "other-shop") == {"FLAT10": 1}


def signed_in_editor() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="signin_name").input("editor")
    at.text_input(key="signin_password").input(PASSWORDS["editor"])
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_the_coupon_form_shows_this_catalogs_redemptions_and_refuses_a_lower_limit(served: Running) -> None:
    redeem(served)
    at = page(signed_in_editor(), "Promotions")
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
