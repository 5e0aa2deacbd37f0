"""The console through Streamlit's AppTest: every page, each role, bad input shown as messages."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from streamlit.proto.WidgetStates_pb2 import WidgetState

from engine.catalog import load_catalog_text
from engine.console.yaml_edit import load
from engine.users import list_audit
from tests.ui.conftest import open_source, page, texts

SAAS = "file: saas.yaml"
CSV = "customer_id,plan,quantity,segment,api_calls\na,pro,3,smb,15000\nb,free,,smb,800\nc,enterprise,10,ent,0\n"


def edit(at, text: str):  # type: ignore[no-untyped-def]
    at.text_area(key="editor_text").input(text).run()
    assert not at.exception, at.exception
    return at


def form(at, name: str):  # type: ignore[no-untyped-def]
    at.radio(key="f_form").set_value(name).run()
    return at


def change_tier(at, unit: str = "0.003"):  # type: ignore[no-untyped-def]
    form(at, "Change a tier")
    at.selectbox(key="f_tier_price").select("pro · calls").run()
    at.selectbox(key="f_tier_no").select(2)
    at.text_input(key="f_tier_unit").input(unit)
    at.button(key="f_tier_apply").click().run()
    assert not at.exception, at.exception
    return at


def test_sign_in(app) -> None:  # type: ignore[no-untyped-def]
    at = app(None)
    assert "Billing console" in [t.value for t in at.title]
    at.text_input(key="signin_name").input("editor")
    at.text_input(key="signin_password").input("wrong password")
    at.button[0].click().run()
    assert "Wrong user name or password." in texts(at, "error")
    assert "user" not in at.session_state
    at.text_input(key="signin_password").input("editor-demo")
    at.button[0].click().run()
    assert at.session_state["user"] == {"name": "editor", "role": "editor"}
    assert "**editor** · editor" in texts(at, "markdown")


def test_viewer_reads_only(app) -> None:  # type: ignore[no-untyped-def]
    at = open_source(app("viewer"), SAAS)
    assert at.text_area(key="editor_text").disabled
    assert any("Editing drafts needs the editor role" in w for w in texts(at, "warning"))
    assert not [b for b in at.button if b.key == "save_draft"]
    page(at, "Simulate")
    assert any("Simulating needs the editor role" in w for w in texts(at, "warning"))
    assert not [b for b in at.button if b.key == "sim_run"]
    for name in ("Publish & history", "Inspect", "Access tester", "Audit & users"):
        page(at, name)
        assert not texts(at, "error")
    assert not [b for b in at.button if b.key in ("pub_go", "rb_go")]


def test_validation_error_and_fix(app) -> None:  # type: ignore[no-untyped-def]
    at = open_source(app("editor"), SAAS)
    good = at.text_area(key="editor_text").value
    assert any(s.startswith("Valid: catalog acme-analytics") for s in texts(at, "success"))
    bad = good.replace('amount: "49.00"', 'amount: "forty-nine"')
    edit(at, bad)
    assert any("1 error(s)" in e for e in texts(at, "error"))
    problem = next(m for m in texts(at, "markdown") if "plans.pro.prices[0].amount" in m)
    line = bad.splitlines().index(next(x for x in bad.splitlines() if "forty-nine" in x)) + 1
    assert f"line {line}" in problem
    # In words a business user reads: where (plan, price, field) and what to write.
    assert "plan pro › price 1 › amount" in problem
    assert """'forty-nine' is not an amount; write a decimal string such as "49.00\"""" in problem
    # A tier's bound is "a number or empty" to the schema: the message says what to write,
    # never JSON Schema's "is not valid under any of the given schemas" or its pattern.
    edit(at, good.replace("up_to: 10000", "up_to: lots", 1))
    shown = "\n".join([*texts(at, "markdown"), *texts(at, "error"), *texts(at, "caption")])
    assert (
        "plan pro › price 3 › tier 1 › up to (`plans.pro.prices[2].tiers[0].up_to`) · Error: 'lots' is not "
        "written as expected: a number such as 1000 (digits, maybe a decimal point)"
    ) in shown
    assert "is not valid under any of the given schemas" not in shown
    assert "does not match" not in shown and "^[0-9]" not in shown
    # An entitlement of a quantity feature with a fraction: the words name every form it may
    # take, not only the first one the schema tried ("should be true or false").
    edit(at, good.replace("      projects: 20\n", "      projects: 2.5\n", 1))
    shown = "\n".join(texts(at, "markdown"))
    assert (
        "plan pro › entitlements › projects (`plans.pro.entitlements.projects`) · Error: this value has the wrong "
        "form: write true or false, a number, or {limit: N, period: month, overage: block}"
    ) in shown
    assert "should be true or false" not in shown
    edit(at, good)
    assert not texts(at, "error")
    assert any(s.startswith("Valid") for s in texts(at, "success"))
    # A draft that does not parse: a message with its line, no stack trace.
    edit(at, "catalog: x\nplans: [\n")
    assert any("malformed YAML" in m for m in texts(at, "markdown"))
    assert not at.exception


def test_form_edits_write_yaml(app) -> None:  # type: ignore[no-untyped-def]
    at = open_source(app("editor"), SAAS)
    # Change a price.
    form(at, "Change a price")
    at.selectbox(key="f_price_plan").select("pro").run()
    at.selectbox(key="f_price_id").select("base").run()
    at.selectbox(key="f_price_field").select("amount")
    at.text_input(key="f_price_value").input("59")
    at.button(key="f_price_apply").click().run()
    text = at.text_area(key="editor_text").value
    assert '{id: base, name: Pro base fee, model: flat, amount: "59"}' in text
    assert "# A SaaS analytics product" in text  # comments survive
    # Change a tier.
    change_tier(at)
    # Add a plan and a coupon.
    form(at, "Add a plan")
    at.text_input(key="f_plan_id").input("team")
    at.text_input(key="f_plan_name").input("Team")
    at.text_input(key="f_plan_fee").input("99.00")
    at.button(key="f_plan_apply").click().run()
    form(at, "Add a coupon")
    at.text_input(key="f_coupon_code").input("SPRING15")
    at.text_input(key="f_coupon_value").input("15")
    at.selectbox(key="f_coupon_duration").select("repeating")
    at.number_input(key="f_coupon_periods").set_value(2)
    at.multiselect(key="f_coupon_plans").select("pro")
    at.button(key="f_coupon_apply").click().run()
    assert not at.exception
    text = at.text_area(key="editor_text").value
    catalog = load_catalog_text(text)
    pro = catalog.plan("pro")
    assert pro.price("base").amount == Decimal(59)
    assert [t.unit_amount for t in pro.price("calls").tiers] == [Decimal(0), Decimal("0.003"), Decimal("0.001")]
    assert catalog.plan("team").price("base").amount == Decimal("99.00")
    c = catalog.coupon("SPRING15")
    assert (c.percent_off, c.duration, c.periods, c.applies_to) == (Decimal(15), "repeating", 2, ("pro",))
    assert "SPRING15: {percent_off: 15, duration: repeating, periods: 2, applies_to: [pro]}" in text
    # A bad form value: a message, the text unchanged.
    form(at, "Change a price")
    at.selectbox(key="f_price_plan").select("pro").run()
    at.selectbox(key="f_price_id").select("base").run()
    at.text_input(key="f_price_value").input("cheap")
    at.button(key="f_price_apply").click().run()
    assert any("'cheap' is not an amount" in e for e in texts(at, "error"))
    assert at.text_area(key="editor_text").value == text


def edit_table(at, key: str, edits: dict, button: str):  # type: ignore[no-untyped-def]
    """AppTest cannot type into an st.data_editor: send its edits as the browser does (JSON,
    rows by position from 0), with the button's click, in one run."""
    grid = at.data_editor(key=key)
    at.button(key=button).click()
    states = at._tree.get_widget_states()
    states.widgets.append(
        WidgetState(
            id=grid.proto.id,
            string_value=json.dumps({"edited_rows": {}, "added_rows": [], "deleted_rows": [], **edits}),
        )
    )
    at._run(states)
    assert not at.exception, at.exception
    return at


def test_the_tier_picker_and_the_tier_table_number_tiers_alike(app) -> None:  # type: ignore[no-untyped-def]
    at = open_source(app("editor"), SAAS)
    form(at, "Edit tiers (table)")
    at.selectbox(key="f_tiers_price").select("pro · calls").run()
    grid = at.data_editor(key="f_tiers_pro_calls").value
    assert (grid.index.name, list(grid.index)) == ("tier", [1, 2, 3])
    assert list(grid["unit_amount"]) == ["0", "0.002", "0.001"]
    # The second row of the table, the one it labels tier 2, is the tier 2 the picker changes.
    edit_table(at, "f_tiers_pro_calls", {"edited_rows": {"1": {"unit_amount": "0.0035"}}}, "f_tiers_apply")
    assert "Applied to the YAML." in texts(at, "success")
    tiers = load_catalog_text(at.text_area(key="editor_text").value).plan("pro").price("calls").tiers
    assert [t.unit_amount for t in tiers] == [Decimal(0), Decimal("0.0035"), Decimal("0.001")]
    form(at, "Change a tier")
    at.selectbox(key="f_tier_price").select("pro · calls").run()
    assert at.selectbox(key="f_tier_no").options == ["1", "2", "3"]
    shown = next(d.value for d in at.dataframe if d.value.index.name == "tier")
    assert shown.loc[2, "unit_amount"] == "0.0035"
    change_tier(at, "0.004")  # the picker's tier 2
    form(at, "Edit tiers (table)")
    at.selectbox(key="f_tiers_price").select("pro · calls").run()
    assert at.data_editor(key="f_tiers_pro_calls").value.loc[2, "unit_amount"] == "0.004"


def test_toggle_rule(app) -> None:  # type: ignore[no-untyped-def]
    at = app("editor")
    at.radio(key="editor_kind").set_value("ruleset").run()
    ruleset = (
        "ruleset: promotions\nrules:\n  - id: edu-50  # half price for schools\n    on: price.calculate\n"
        "    when: {customer.segment: edu}\n    then:\n      - discount: {percent: 50}\n"
    )
    edit(at, ruleset)
    at.selectbox(key="f_rule_id").select("edu-50")
    at.button(key="f_rule_toggle").click().run()
    text = at.text_area(key="editor_text").value
    assert load(text)["rules"][0]["enabled"] is False
    assert "# half price for schools" in text
    at.button(key="f_rule_toggle").click().run()
    assert "enabled" not in load(at.text_area(key="editor_text").value)["rules"][0]


def simulate_csv(at, csv: str, months: int = 3):  # type: ignore[no-untyped-def]
    page(at, "Simulate")
    at.radio(key="sim_source").set_value("CSV").run()
    at.text_area(key="sim_csv_text").input(csv)
    at.number_input(key="sim_months").set_value(months)
    at.button(key="sim_run").click().run()
    assert not at.exception, at.exception
    return at


def test_simulation_with_known_totals(app) -> None:  # type: ignore[no-untyped-def]
    at = change_tier(open_source(app("editor"), SAAS))
    at = simulate_csv(at, CSV)
    assert not texts(at, "error")
    # Worked by hand: a pays 89.00 a month on the baseline and 94.00 on the draft (5,000 calls in
    # tier 2 at 0.003 instead of 0.002); b is free; c pays the 2,000.00 minimum. Three months.
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Baseline revenue"] == "6,267.00 USD"
    assert metrics["Draft revenue"] == "6,282.00 USD"
    assert "Revenue delta: **+15.00 USD** · 1 customers pay more, 0 pay less" in texts(at, "markdown")
    r = at.session_state["sim_result"]
    assert [m["delta"] for m in r.by_month] == [Decimal("5.00")] * 3
    assert r.customers_csv().count("\n") == 4


def simulate_synthetic(at, usage: str, count: int = 60):  # type: ignore[no-untyped-def]
    page(at, "Simulate")
    at.radio(key="sim_source").set_value("Synthetic cohort").run()
    at.number_input(key="syn_count").set_value(count)
    at.number_input(key="syn_growth").set_value(0.0)
    at.number_input(key="syn_churn").set_value(0.0)
    at.number_input(key="sim_months").set_value(2)
    at.radio(key="syn_usage_mode").set_value(usage).run()
    at.button(key="sim_run").click().run()
    assert not at.exception, at.exception
    return at


def test_synthetic_cohort_usage_and_the_cannot_exercise_warning(app) -> None:  # type: ignore[no-untyped-def]
    """Finding 12: the synthetic cohort uses each plan as customers do, so a tier price change
    shows; with zero usage the console says the change cannot be exercised."""
    at = change_tier(open_source(app("editor"), SAAS))
    at = simulate_synthetic(at, "Typical for each plan")
    r = at.session_state["sim_result"]
    assert r.totals["delta"] > 0 and {p["plan"]: p for p in r.by_plan}["pro"]["delta"] > 0
    assert not [w for w in texts(at, "warning") if "cannot exercise" in w]
    at = simulate_synthetic(at, "None (zero usage)")
    assert at.session_state["sim_result"].totals["delta"] == 0
    assert any("cannot exercise" in w and "tier 2 of price 'calls' of plan 'pro'" in w for w in texts(at, "warning"))
    # Usage set per metric: a median below the free first tier cannot reach tier 2 either.
    at.radio(key="syn_usage_mode").set_value("Set per metric").run()
    at.number_input(key="syn_median_api_calls").set_value(2000.0)
    at.number_input(key="syn_sigma_api_calls").set_value(0.0)
    at.button(key="sim_run").click().run()
    assert any("cannot exercise" in w for w in texts(at, "warning"))


def test_simulation_applies_the_pricing_rules(app) -> None:  # type: ignore[no-untyped-def]
    """Finding 2: the what-if prices with the pricing rules in force, as quotes and invoices do."""
    at = open_source(app("editor"), SAAS)
    at = simulate_csv(at, "customer_id,plan,quantity,segment,api_calls\ns,pro,3,edu,15000\n", months=1)
    r = at.session_state["sim_result"]
    # 49 + 3 x 10 + 5,000 x 0.002 = 89.00, half off for education.
    assert r.totals["baseline"] == Decimal("44.50") and r.totals["baseline_discount"] == Decimal("44.50")
    assert [(d["source"], d["reason"]) for d in r.discounts] == [("rule:promotions/edu-50", "Education discount")]


def test_simulation_bad_input(app) -> None:  # type: ignore[no-untyped-def]
    at = open_source(app("editor"), SAAS)
    at = simulate_csv(at, "plan,api_calls\npro,5\n")
    assert any("missing column 'customer_id'" in e for e in texts(at, "error"))
    at.text_area(key="sim_csv_text").input("customer_id,plan,api_calls\na,pro,many\n")
    at.button(key="sim_run").click().run()
    assert any("line 2: api_calls: 'many' is not a number" in e for e in texts(at, "error"))
    at.radio(key="sim_source").set_value("Synthetic cohort").run()
    at.number_input(key="syn_count").set_value(0)
    at.button(key="sim_run").click().run()
    assert any("cohort of zero customers" in e for e in texts(at, "error"))
    assert not at.exception
    # A draft with errors is not simulated.
    page(at, "Editor")
    edit(at, at.text_area(key="editor_text").value.replace("currency: USD", "currency: 12"))
    page(at, "Simulate")
    assert any("fix them in the Editor before simulating" in e for e in texts(at, "error"))


def publish_flow(at, comment: str):  # type: ignore[no-untyped-def]
    page(at, "Publish & history")
    at.selectbox(key="pub_draft").select("acme-analytics")
    at.text_input(key="pub_comment").input(comment)
    if [c for c in at.checkbox if c.key == "pub_accept"]:
        at.checkbox(key="pub_accept").check()
    at.button(key="pub_go").click().run()
    assert not at.exception, at.exception
    return at


def test_publish_and_rollback(app, console_db) -> None:  # type: ignore[no-untyped-def]
    at = open_source(app("publisher"), SAAS)
    at.button(key="save_draft").click().run()
    # Not simulated yet: nothing is published.
    publish_flow(at, "first version")
    assert any("simulate this draft" in e for e in texts(at, "error"))
    at = simulate_csv(page(at, "Editor"), CSV, months=1)
    page(at, "Publish & history")
    at.selectbox(key="pub_draft").select("acme-analytics")
    at.text_input(key="pub_comment").input("first version")
    # The shipped catalog has no lint warnings: nobody is asked to accept any.
    assert not [c for c in at.checkbox if c.key == "pub_accept"]
    at.button(key="pub_go").click().run()
    assert "Published acme-analytics v1." in texts(at, "success")
    # A second version: a higher tier price, simulated, published.
    page(at, "Editor")
    change_tier(at)
    at.button(key="save_draft").click().run()
    simulate_csv(at, CSV, months=1)
    publish_flow(at, "calls tier 2 at 0.003")
    assert "Published acme-analytics v2." in texts(at, "success")
    assert any("0.003" in c.value for c in at.code)  # the history's diff
    at.selectbox(key="rb_version").select(1)
    at.text_input(key="rb_why").input("customers complained")
    at.button(key="rb_go").click().run()
    assert "Rolled back: v3 now has the content of v1." in texts(at, "success")
    # The history on the page shows the new version at once.
    history = next(d.value for d in at.dataframe if "console action" in d.value.columns)
    assert list(history["version"]) == [3, 2, 1]
    assert "rollback to v1: customers complained" in list(history["comment"])
    with console_db.session() as s:
        audit = list_audit(s, "acme-analytics")
    assert [(a["action"], a["user"], a["version"], a["why"]) for a in audit] == [
        ("rollback", "publisher", 3, "customers complained"),
        ("publish", "publisher", 2, "calls tier 2 at 0.003"),
        ("publish", "publisher", 1, "first version"),
    ]
    # The Audit & users page: each publish and the rollback with who and why, and its diff.
    page(at, "Audit & users")
    assert not texts(at, "error")
    diffs = {e.label: "\n".join(c.value for c in e.code) for e in at.expander}
    published = diffs["publisher (publisher) published catalog acme-analytics v2: calls tier 2 at 0.003"]
    rolled_back = diffs[
        "publisher (publisher) rolled back catalog acme-analytics v3 (content of v1): customers complained"
    ]
    assert published.startswith("--- v1\n+++ v2\n")
    assert "-      - unit_amount: '0.002'\n+      - unit_amount: '0.003'" in published
    assert rolled_back.startswith("--- v2\n+++ v3\n")
    assert "-      - unit_amount: '0.003'\n+      - unit_amount: '0.002'" in rolled_back
    who = next(d.value for d in at.dataframe if "why" in d.value.columns)
    assert list(zip(who["who"], who["why"], strict=False))[:3] == [
        ("publisher", "customers complained"),
        ("publisher", "calls tier 2 at 0.003"),
        ("publisher", "first version"),
    ]


def test_editor_cannot_publish(app) -> None:  # type: ignore[no-untyped-def]
    at = open_source(app("editor"), SAAS)
    at.button(key="save_draft").click().run()
    page(at, "Publish & history")
    assert any("Publishing needs the publisher role" in w for w in texts(at, "warning"))
    assert not [b for b in at.button if b.key == "pub_go"]


def test_lifecycle_page(app) -> None:  # type: ignore[no-untyped-def]
    at = change_tier(open_source(app("editor"), SAAS))
    page(at, "Simulate")
    at.radio(key="sim_source").set_value("CSV").run()
    at.text_area(key="sim_csv_text").input(CSV)
    at.date_input(key="sim_start").set_value(date(2027, 1, 1))
    at.radio(key="sim_view").set_value("Lifecycle (collection, dunning)").run()
    at.number_input(key="life_months").set_value(2)
    at.number_input(key="life_fail").set_value(0.0)
    at.button(key="life_run").click().run()
    assert not at.exception and not texts(at, "error")
    res = at.session_state["life_result"]
    # Run by the engine on the example rules, nothing declines. Invoices issued on Jan 1 and
    # Feb 1: a pays 79.00 in advance (base 49 + 3 seats), then 79.00 + January's calls (5,000
    # in tier 2: 10.00 baseline, 15.00 draft); c 1,750.00 (platform 1,500 + 10 seats at 25),
    # then 1,750.00 + the 250.00 true-up of January to its 2,000.00 minimum; b's are 0.00.
    assert res.totals["baseline"]["collected"] == Decimal("3918.00")
    assert res.totals["draft"]["collected"] == Decimal("3923.00")
    assert res.totals["draft"]["invoices"] == 6
    # b's 0.00 invoices are not mailed (rules/notifications.yaml: invoice-issued needs a total)
    assert res.notifications["draft"] == {"invoice_issued (email)": 4, "payment_succeeded (email)": 4}
    assert res.dunning["draft"] == {"active": 3}
    lines = res.months_csv().splitlines()
    assert lines[0].startswith("month,side,") and len(lines) == 5  # 2 months x 2 sides
    assert lines[4].startswith("2027-02,draft,3,")


def test_simulation_prices_credit_packs_and_progressive_thresholds(app) -> None:  # type: ignore[no-untyped-def]
    """Issue 20: the what-if prices a credit pack and a draft's progressive thresholds with the
    engine's own functions, and shows the figures on the page."""
    at = open_source(app("editor"), SAAS)
    text = at.text_area(key="editor_text").value
    assert text.count("    trial_days: 14\n") == 1
    edit(
        at,
        text.replace("    trial_days: 14\n", '    trial_days: 14\n    progressive_billing: {thresholds: ["20.00"]}\n'),
    )
    page(at, "Simulate")
    at.radio(key="sim_source").set_value("CSV").run()
    at.text_area(key="sim_csv_text").input("customer_id,plan,quantity,api_calls\na,pro,3,25000\n")
    at.number_input(key="sim_months").set_value(1)
    at.date_input(key="sim_start").set_value(date(2027, 1, 1))
    at.selectbox(key="sim_pack").select("starter")
    at.number_input(key="sim_pack_pct").set_value(100.0)
    at.button(key="sim_run").click().run()
    assert not at.exception, at.exception
    assert not texts(at, "error")
    # January: 49.00 + 3 x 10.00 + 15,000 x 0.002 = 109.00. The pack (45.00 for 50.00) pays
    # 50.00 of it, 59.00 is collected: the customer ran out; all of it used, 45.00 earned.
    assert any(t.startswith("**Credit packs**: 100 % of the cohort buy `starter`") for t in texts(at, "markdown"))
    packs = {row[""]: (row["baseline"], row["draft"]) for row in at.dataframe[0].value.to_dict("records")}
    assert packs["Cash at sale"] == packs["Revenue earned as consumed"] == ("45.00", "45.00")
    assert packs["Bills the wallets could not pay"] == ("59.00", "59.00")
    assert packs["Customers who ran out"] == ("1", "1")
    # The draft's threshold 20.00 of accrued usage: 25,000 calls arriving evenly over 31 days
    # reach it on day 25 (20,161 calls: 10,161 x 0.002 = 20.32), one progressive invoice; the
    # close bills 30.00 less 20.32. The period still adds up to its quote, 109.00.
    assert any(
        t.startswith("**Progressive billing**") and "still add up to its quote" in t for t in texts(at, "markdown")
    )
    early = {row[""]: (row["baseline"], row["draft"]) for row in at.dataframe[1].value.to_dict("records")}
    assert early["Progressive invoices"] == ("0", "1")
    assert early["Billed before the close"] == ("0", "20.32")
    assert early["Those periods' invoices in all"] == ("0", "109.00")
    assert early["Those periods' quotes"] == ("0", "109.00")


def test_simulation_prices_a_token_pack(app) -> None:  # type: ignore[no-untyped-def]
    """Issue 20: a draft selling the starter pack in tokens (50,000 for 45.00, each API call
    burning one) is priced on the page, not refused: January's 25,000 calls burn 25,000 tokens,
    half the pack: 22.50 earned, 22.50 still deferred, nothing owed; the baseline's money pack
    pays 50.00 of the 109.00 bill as before."""
    at = open_source(app("editor"), SAAS)
    text = at.text_area(key="editor_text").value
    money_pack = '  packs:\n    starter: {name: Starter credits, price: "45.00", credit: "50.00"'
    assert text.count(money_pack) == 1
    edit(
        at,
        text.replace(
            money_pack,
            '  unit: tokens\n  rate: "0.001"\n  burn: {api_calls: "1"}\n'
            '  packs:\n    starter: {name: Starter tokens, price: "45.00", credit: "50000"',
        ).replace('  top_up: {threshold: "10.00", pack: starter}', '  top_up: {threshold: "1000", pack: starter}'),
    )
    page(at, "Simulate")
    at.radio(key="sim_source").set_value("CSV").run()
    at.text_area(key="sim_csv_text").input("customer_id,plan,quantity,api_calls\na,pro,3,25000\n")
    at.number_input(key="sim_months").set_value(1)
    at.date_input(key="sim_start").set_value(date(2027, 1, 1))
    at.selectbox(key="sim_pack").select("starter")
    at.number_input(key="sim_pack_pct").set_value(100.0)
    at.button(key="sim_run").click().run()
    assert not at.exception, at.exception
    assert not texts(at, "error")
    packs = {row[""]: (row["baseline"], row["draft"]) for row in at.dataframe[0].value.to_dict("records")}
    assert packs["Credit consumed by bills (USD / tokens)"] == ("50.00", "25000")
    assert packs["Revenue earned as consumed"] == ("45.00", "22.50")
    assert packs["Still deferred at the end"] == ("0.00", "22.50")
    assert packs["Usage beyond the wallets, still owed (USD / tokens)"] == ("—", "0")
