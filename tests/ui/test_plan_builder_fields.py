"""FORMATS §1 fields the plan builder lacked (issue 18): a flat fee's timing, and an edited
plan keeping the settings the form does not hold."""

from __future__ import annotations

from engine.catalog import load_catalog_text
from tests.ui.conftest import page, texts
from tests.ui.test_builders import click, fill, open_file, yaml


def test_a_flat_fee_can_be_billed_in_arrears(app) -> None:  # type: ignore[no-untyped-def]
    at = page(app("editor"), "Plan builder")
    open_file(at, "pb_source", "file: saas.yaml")
    fill(at, pb_id="late", pb_name="Late")
    click(at, "pb_add_price")
    fill(at, pb_p0_id="fee", pb_p0_amount="5.00")
    at.selectbox(key="pb_p0_timing").select("in_arrears").run()
    click(at, "pb_write")
    assert "Plan late written to the draft's YAML." in texts(at, "success")
    assert '- {id: fee, model: flat, timing: in_arrears, amount: "5.00"}' in yaml(at)
    assert load_catalog_text(yaml(at)).plan("late").prices[0].timing == "in_arrears"


def test_editing_a_plan_keeps_what_the_form_does_not_hold(app) -> None:  # type: ignore[no-untyped-def]
    at = page(app("editor"), "Plan builder")
    open_file(at, "pb_source", "file: saas.yaml")
    at.session_state["editor_text"] = yaml(at).replace(
        "  pro:\n    name: Pro\n", "  pro:\n    name: Pro\n    interval_count: 3   # quarterly\n"
    )
    at.run()
    at.selectbox(key="pb_choice").select("pro").run()
    click(at, "pb_load")
    fill(at, pb_name="Pro quarterly")
    click(at, "pb_write")
    assert "Plan pro written to the draft's YAML." in texts(at, "success")
    assert "    interval_count: 3   # quarterly\n" in yaml(at)
    plan = load_catalog_text(yaml(at)).plan("pro")
    assert (plan.name, plan.interval_count) == ("Pro quarterly", 3)


def test_editing_a_plan_keeps_a_price_description(app) -> None:  # type: ignore[no-untyped-def]
    at = page(app("editor"), "Plan builder")
    open_file(at, "pb_source", "file: saas.yaml")
    old = '{id: base, name: Pro base fee, model: flat, amount: "49.00"}'
    assert old in yaml(at)
    at.session_state["editor_text"] = yaml(at).replace(
        old, old.replace("model:", "description: Platform access, model:")
    )
    at.run()
    at.selectbox(key="pb_choice").select("pro").run()
    click(at, "pb_load")
    fill(at, pb_p0_amount="59.00")
    click(at, "pb_write")
    assert "Plan pro written to the draft's YAML." in texts(at, "success")
    assert '{id: base, name: Pro base fee, description: Platform access, model: flat, amount: "59.00"}' in yaml(at)
