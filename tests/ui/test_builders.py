"""The Plan builder, Promotions and Audit & users pages through Streamlit's AppTest: each
form's bad input marked under its field with nothing written; good input written into the
draft's YAML (comments kept), which validates; user management audited."""

from __future__ import annotations

from decimal import Decimal

from engine.catalog import load_catalog_text
from engine.console.drafts import check_draft
from engine.users import authenticate, list_audit, list_users
from tests.ui.conftest import page, texts


def yaml(at) -> str:  # type: ignore[no-untyped-def]
    return str(at.session_state["editor_text"])


def fill(at, **values: str):  # type: ignore[no-untyped-def]
    for key, value in values.items():
        at.text_input(key=key).input(value)
    at.run()
    assert not at.exception, at.exception
    return at


def click(at, key: str):  # type: ignore[no-untyped-def]
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def open_file(at, key: str, label: str):  # type: ignore[no-untyped-def]
    at.selectbox(key=key).select(label)
    return click(at, f"{key}_open")


def test_plan_builder_marks_bad_fields_writes_nothing_then_writes_the_plan(app) -> None:  # type: ignore[no-untyped-def]
    at = page(app("editor"), "Plan builder")
    open_file(at, "pb_source", "file: saas.yaml")
    original = yaml(at)
    fill(at, pb_id="team", pb_name="Team", pb_trial_days="14", pb_minimum_amount="-1")
    click(at, "pb_add_price")
    fill(at, pb_p0_id="seats")
    at.selectbox(key="pb_p0_model").select("per_unit").run()
    fill(at, pb_p0_unit_amount="8.00", pb_p0_included="3")
    click(at, "pb_add_price")
    fill(at, pb_p1_id="calls")
    at.selectbox(key="pb_p1_model").select("graduated").run()
    at.selectbox(key="pb_p1_metric").select("api_calls").run()
    click(at, "pb_add_tier_1")
    click(at, "pb_add_tier_1")
    # Tiers out of order, a float's noise, a negative minimum: each marked where it is.
    fill(
        at,
        pb_p1_t0_up_to="100000",
        pb_p1_t0_unit_amount="0",
        pb_p1_t1_up_to="10000",
        pb_p1_t1_unit_amount="0.30000000000000004",
        pb_p1_t2_unit_amount="0.001",
    )
    errors = texts(at, "error")
    assert "-1 is negative; a price is 0 or more" in errors
    assert "Tier 2 up to: tiers must go up: 10000 is not above the tier before (100000)" in errors
    assert any(e.startswith("Tier 2 unit amount: 0.30000000000000004 has 17 decimals") for e in errors)
    click(at, "pb_write")
    assert "Not written: 3 problem(s), marked above." in texts(at, "error")
    assert yaml(at) == original
    # Fixed: the plan is written, comments kept, and it prices.
    fill(at, pb_minimum_amount="", pb_p1_t0_up_to="10000", pb_p1_t1_up_to="100000", pb_p1_t1_unit_amount="0.002")
    click(at, "pb_add_ent")
    at.selectbox(key="pb_e0_feature").select("api").run()
    fill(at, pb_e0_limit="200000")
    at.selectbox(key="pb_e0_overage").select("notify").run()
    click(at, "pb_write")
    assert "Plan team written to the draft's YAML." in texts(at, "success")
    text = yaml(at)
    assert text.startswith("# A SaaS analytics product")
    plan = load_catalog_text(text).plan("team")
    assert plan.trial_days == 14 and plan.entitlements["api"].limit == 200000
    assert [t.unit_amount for t in plan.price("calls").tiers] == [Decimal(0), Decimal("0.002"), Decimal("0.001")]
    assert plan.price("seats").tiers[0].up_to == Decimal(3)  # 3 seats included
    # Edit it again: load, change tier 2, write.
    at.selectbox(key="pb_choice").select("team").run()
    click(at, "pb_load")
    assert at.text_input(key="pb_p1_t1_unit_amount").value == "0.002"
    fill(at, pb_p1_t1_unit_amount="0.0025")
    click(at, "pb_write")
    assert load_catalog_text(yaml(at)).plan("team").price("calls").tiers[1].unit_amount == Decimal("0.0025")
    comparison = next(d.value for d in at.dataframe if "" in d.value.columns)
    assert "Free trial" in list(comparison[""])


def test_viewer_sees_the_comparison_but_no_form(app) -> None:  # type: ignore[no-untyped-def]
    at = page(app("viewer"), "Plan builder")
    open_file(at, "pb_source", "file: saas.yaml")
    assert any("Building plans needs the editor role" in w for w in texts(at, "warning"))
    assert not [b for b in at.button if b.key == "pb_write"]
    assert at.dataframe


def test_promotion_form_refuses_bad_dates_then_writes_an_edu_rule(app) -> None:  # type: ignore[no-untyped-def]
    at = page(app("editor"), "Promotions")
    open_file(at, "pr_source_ruleset", "file: promotions.yaml")
    original = yaml(at)
    at.multiselect(key="pr_segments").select("edu")
    at.multiselect(key="pr_plans").select("pro")
    fill(at, pr_id="edu-spring", pr_value="150", pr_valid_from="2027-06-30", pr_valid_until="2027-01-01")
    click(at, "pr_write_pricing")
    errors = texts(at, "error")
    assert "150 is not a percentage from 0 to 100" in errors
    assert "2027-01-01 is before the start 2027-06-30" in errors
    assert yaml(at) == original
    fill(at, pr_value="25", pr_valid_until="2027-12-31", pr_description="Spring offer for schools")
    click(at, "pr_write_pricing")
    assert "Pricing rule written to the draft's YAML." in texts(at, "success")
    text = yaml(at)
    assert "id: edu-spring" in text and "{customer.segment: edu}" in text
    assert check_draft("ruleset", text).ok


def test_coupon_access_and_notification_forms(app, console_db) -> None:  # type: ignore[no-untyped-def]
    at = page(app("editor"), "Promotions")
    at.radio(key="pr_form").set_value("Coupon").run()
    open_file(at, "pr_source_catalog", "file: saas.yaml")
    fill(at, cp_code="SPRING25", cp_value="25", cp_expires="2020-01-01", cp_max_redemptions="0")
    click(at, "cp_write")
    errors = texts(at, "error")
    assert "2020-01-01 has passed already" in errors and "0 is below 1" in errors
    fill(at, cp_expires="2099-05-31", cp_max_redemptions="100")
    click(at, "cp_write")
    coupon = load_catalog_text(yaml(at)).coupon("SPRING25")
    assert (coupon.max_redemptions, str(coupon.expires)) == (100, "2099-05-31")
    table = next(d.value for d in at.dataframe if "used so far" in d.value.columns)
    assert list(table[table["code"] == "SPRING25"]["left"]) == ["100"]
    # An access rule and a notification rule, into the access ruleset.
    at.radio(key="pr_form").set_value("Access rule").run()
    open_file(at, "pr_source_ruleset", "file: access.yaml")
    at.selectbox(key="ac_feature").select("audit_log")
    fill(at, ac_id="edu-audit", ac_tag="edu")
    click(at, "ac_write")
    at.radio(key="pr_form").set_value("Notification rule").run()
    at.selectbox(key="nt_event").select("invoice.paid")
    at.selectbox(key="nt_template").select("payment_succeeded")
    fill(at, nt_id="thanks")
    click(at, "nt_write")
    text = yaml(at)
    assert "id: edu-audit" in text and "id: thanks" in text
    assert check_draft("ruleset", text).ok


def test_admin_manages_users_in_the_console(app, console_db) -> None:  # type: ignore[no-untyped-def]
    at = page(app("publisher"), "Audit & users")
    assert not [b for b in at.button if b.key == "users_add"]
    at = page(app("admin"), "Audit & users")
    fill(at, users_name="grace", users_password="long enough pw", users_why="new analyst")
    click(at, "users_add")
    assert "Added grace as viewer." in texts(at, "success")
    at.radio(key="users_action").set_value("Disable or enable").run()
    at.selectbox(key="users_pick_disable").select("grace")
    fill(at, users_why="left the team")
    click(at, "users_disable")
    with console_db.session() as s:
        assert authenticate(s, "grace", "long enough pw") is None
        assert [(a["action"], a["why"]) for a in list_audit(s, "grace")] == [
            ("user.disable", "left the team"),
            ("user.add", "new analyst"),
        ]
    who = next(d.value for d in at.dataframe if "why" in d.value.columns)
    assert list(who["why"])[:2] == ["left the team", "new analyst"]


def test_admin_changes_a_role_recorded_in_the_audit(app, console_db) -> None:  # type: ignore[no-untyped-def]
    at = page(app("admin"), "Audit & users")
    at.radio(key="users_action").set_value("Change a role").run()
    assert "admin" not in at.selectbox(key="users_pick").options  # not one's own role
    at.selectbox(key="users_pick").select("editor")
    at.selectbox(key="users_new_role").select("publisher")
    fill(at, users_why="runs the spring launch")
    click(at, "users_change")
    assert "editor is now a publisher." in texts(at, "success")
    with console_db.session() as s:
        assert {u["name"]: u["role"] for u in list_users(s)}["editor"] == "publisher"
        assert [(a["action"], a["user"], a["why"], a["details"]) for a in list_audit(s, "editor")] == [
            ("user.role", "admin", "runs the spring launch", {"before": "editor", "after": "publisher"})
        ]
    shown = next(d.value for d in at.dataframe if "why" in d.value.columns)
    assert (shown["who"][0], shown["why"][0]) == ("admin", "runs the spring launch")
    users = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert dict(zip(users["user"], users["role"], strict=True))["editor"] == "publisher"
    # Changing it to the role it has: said in place, nothing recorded.
    at.selectbox(key="users_pick").select("editor")
    at.selectbox(key="users_new_role").select("publisher")
    click(at, "users_change")
    assert "role: editor is already a publisher" in texts(at, "error")
    with console_db.session() as s:
        assert len(list_audit(s, "editor")) == 1


def test_bad_input_on_the_users_form_is_said_in_place_and_changes_nothing(app, console_db) -> None:  # type: ignore[no-untyped-def]
    with console_db.session() as s:
        before = list_users(s)
    at = page(app("admin"), "Audit & users")
    fill(at, users_name="grace", users_password="short", users_why="new analyst")
    click(at, "users_add")
    assert "password: at least 8 characters" in texts(at, "error")
    fill(at, users_name="editor", users_password="long enough pw")
    click(at, "users_add")
    assert "name: a user named 'editor' already exists" in texts(at, "error")
    assert not texts(at, "success")
    with console_db.session() as s:
        assert list_users(s) == before
        assert list_audit(s) == []
        assert authenticate(s, "editor", "editor-demo") == {"name": "editor", "role": "editor"}
