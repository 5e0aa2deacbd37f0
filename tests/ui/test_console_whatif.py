"""The What-if page as a pricing manager uses it (AppTest): usage drawn from the store and
said so, a new plan given a share of the cohort, a plan's customers moved, features lost,
MRR over the months, and a 10,000-customer cohort that answers with a non-zero delta."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from dateutil.relativedelta import relativedelta

from engine import sales
from engine.clock import TestClock
from engine.console import save_draft
from engine.store import Database
from engine.system import lifecycle
from engine.system.console_operations import console_operations
from tests.ui.conftest import open_source, page, texts

ROOT = Path(__file__).resolve().parents[2]
SAAS = "file: saas.yaml"
TEAM = """  team:
    name: Team
    interval: month
    prices:
      - {id: base, name: Team base fee, model: flat, amount: "29.00"}
      - {id: seats, name: Seats, model: per_unit, unit_amount: "8.00"}
    entitlements:
      projects: 5
      data_export: true
      api: {limit: 100000, period: month, overage: allow}

  pro-annual:"""


def _draft(at, text: str):  # type: ignore[no-untyped-def]
    at.text_area(key="editor_text").input(text).run()
    assert not at.exception, at.exception
    return at


def _synthetic(at, count: int, usage: str = "From the store"):  # type: ignore[no-untyped-def]
    page(at, "Simulate")
    at.radio(key="sim_source").set_value("Synthetic cohort").run()
    at.number_input(key="syn_count").set_value(count)
    at.number_input(key="syn_growth").set_value(0.0)
    at.number_input(key="syn_churn").set_value(0.0)
    at.number_input(key="sim_months").set_value(2)
    at.radio(key="syn_usage_mode").set_value(usage).run()
    return at


def _run(at):  # type: ignore[no-untyped-def]
    at.button(key="sim_run").click().run()
    assert not at.exception, at.exception
    return at.session_state["sim_result"]


def _store_gpu(db: Database) -> None:
    """Three Enterprise customers, subscribed five months ago, each used 1,000 GPU hours (10
    events of 100) in each of the last three full months."""
    now = datetime.now(UTC)
    clock = TestClock(now - relativedelta(months=5))
    with db.session() as s:
        sales.publish_catalog(s, str(ROOT / "catalogs" / "saas.yaml"), "test", clock=clock)
        for i in range(3):
            sales.create_customer(s, {"id": f"ent{i}", "name": f"Ent {i}", "email": f"e{i}@x.io"}, clock=clock)
            sales.create_subscription(s, f"ent{i}", "enterprise", clock=clock, quantity=Decimal(5))
    first = now.replace(day=1, hour=10, minute=0, second=0, microsecond=0)
    events = [
        {
            "id": f"g{i}{m}{k}",
            "type": "gpu.used",
            "customer_id": f"ent{i}",
            "time": (first - relativedelta(months=m) + relativedelta(days=k)).isoformat(),
            "properties": {"hours": 100, "region": "us"},
        }
        for i in range(3)
        for m in (1, 2, 3)
        for k in range(10)
    ]
    clock.set(now)
    with db.session() as s:
        sales.ingest_events(s, events, clock=clock)


def test_usage_from_the_store_is_said_and_prices_the_change(app, console_db) -> None:  # type: ignore[no-untyped-def]
    _store_gpu(console_db)
    at = open_source(app("editor"), SAAS)
    text = at.text_area(key="editor_text").value
    at = _draft(at, text.replace('unit_amount: "2.40"', 'unit_amount: "2.50"'))
    r = _run(_synthetic(at, 200))
    assert "usage from 90 stored events of plan enterprise, metric gpu_hours" in " ".join(r.usage_source)
    ent = next(p for p in r.by_plan if p["plan"] == "enterprise")
    assert ent["delta"] == Decimal("100.00") * 2 * ent["customers"] > 0
    shown = " ".join(texts(at, "markdown"))
    assert "Where the usage comes from" in shown and "stored events of plan enterprise" in shown
    assert "plan pro, metric api_calls: no stored usage, typical usage around" in shown


def test_share_and_move_show_features_lost_and_mrr(app) -> None:  # type: ignore[no-untyped-def]
    at = open_source(app("editor"), SAAS)
    at = _draft(at, at.text_area(key="editor_text").value.replace("  pro-annual:", TEAM, 1))
    at = _synthetic(at, 400, "Typical for each plan")
    at.selectbox(key="sim_share_plan").select("team")
    at.number_input(key="sim_share_pct").set_value(30.0)
    at.multiselect(key="sim_share_from").select("pro")
    at.selectbox(key="sim_map_enterprise").select("pro").run()
    r = _run(at)
    features = {(f["plan"], f["draft_plan"], f["feature"]): f["customers"] for f in r.features}
    pro = next(p for p in r.by_plan if p["plan"] == "pro")["customers"]
    assert 0.15 * pro < features[("pro", "team", "sso")] < 0.45 * pro
    assert ("enterprise", "pro", "audit_log") in features
    shown = " ".join(texts(at, "markdown"))
    assert f"{features[('pro', 'team', 'sso')]:,} customers of `pro` moving to `team` would **lose** `sso`" in shown
    assert r.totals["pay_less"] >= features[("pro", "team", "sso")] and r.totals["pay_more"] > 0
    assert all(m["mrr_draft"] > 0 for m in r.by_month)
    charts = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any("MRR over the months" in spec for spec in charts), charts


def test_ten_thousand_customers_answer_with_a_non_zero_delta(app) -> None:  # type: ignore[no-untyped-def]
    at = open_source(app("editor"), SAAS)
    text = at.text_area(key="editor_text").value
    assert text.count('"0.002"') == 1
    at = _draft(at, text.replace('"0.002"', '"0.003"'))
    r = _run(_synthetic(at, 10_000))
    assert len({c["customer_id"] for c in r.customers}) == 10_000
    assert r.totals["delta"] > 0 and r.totals["pay_more"] > 1000
    assert any(line.startswith("plan pro, metric api_calls") for line in r.usage_source)


EDU_SPRING = """ruleset: campaigns
rules:
  - id: edu-spring
    description: Schools pay a quarter less.
    on: price.calculate
    when: {customer.segment: edu}
    then:
      - discount: {percent: 25, reason: Edu spring offer}
"""


def test_a_ruleset_draft_discounts_the_draft_side_only(app, console_db) -> None:  # type: ignore[no-untyped-def]
    """The what-if applies the pricing rules in force on both sides and a ruleset draft on the
    draft side: a synthetic cohort with edu customers meets the draft's edu rule."""
    with console_db.session() as s:
        save_draft(
            s, {"name": "editor", "role": "editor"}, "ruleset", "campaigns", EDU_SPRING, ops=console_operations()
        )
    at = _synthetic(open_source(app("editor"), SAAS), 300, "Typical for each plan")
    at.number_input(key="syn_seg_edu").set_value(1.0)
    at.number_input(key="syn_seg_smb").set_value(3.0)
    at.multiselect(key="sim_rulesets").select("campaigns").run()
    r = _run(at)
    assert {c["segment"] for c in r.customers} == {"edu", "smb"}
    rows = {d["source"]: d for d in r.discounts}
    spring = rows["rule:campaigns/edu-spring"]
    assert spring["baseline"] == 0 < spring["draft"], rows
    # The rule in force (rules/promotions.yaml, nothing published) on both sides; on the draft
    # side it takes half of what the draft's rule leaves.
    edu = rows["rule:promotions/edu-50"]
    assert 0 < edu["draft"] < edu["baseline"], rows
    assert r.totals["delta"] < 0 and r.totals["pay_more"] == 0 < r.totals["pay_less"]
    assert not any("same discounts as the rules in force" in w for w in r.warnings)
    shown = " ".join(texts(at, "markdown"))
    assert f"Revenue delta: **{r.totals['delta']:+,.2f} " in shown and "Revenue delta: **-" in shown
    assert (
        f"- `rule:campaigns/edu-spring` (Edu spring offer): 0.00 USD off with the baseline, {spring['draft']:,.2f} USD with the draft"
        in shown
    )
    table = next(d.value for d in at.dataframe if "source" in d.value.columns)
    assert table[table["source"] == "rule:campaigns/edu-spring"]["baseline"].tolist() == ["0"]


def test_a_lifecycle_cohort_over_the_budget_runs_as_a_sample_and_says_so(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Over the sample budget (set small here, so it runs in seconds), the lifecycle what-if runs
    a stratified sample through the engine: the page says how the figures were obtained, with
    the 95 % margins, and its progress bar ends at done."""
    monkeypatch.setattr(lifecycle, "SAMPLE_BUDGET", 12)
    monkeypatch.setattr(lifecycle, "MIN_SAMPLE", 6)
    at = _synthetic(open_source(app("editor"), SAAS), 60, "Typical for each plan")
    at.radio(key="sim_view").set_value("Lifecycle (collection, dunning)").run()
    at.number_input(key="life_months").set_value(1)
    at.number_input(key="life_fail").set_value(30.0)
    at.button(key="life_run").click().run(timeout=300)  # two engines started, on a loaded machine
    assert not at.exception and not texts(at, "error"), at.exception
    sampling = at.session_state["life_result"].sampling
    assert (sampling["customers"], sampling["scaled"]) == (60, True)
    assert 12 <= sampling["customers_run"] < 60  # 12 customer-months / 1 month, at least 2 a stratum
    margin = sampling["collected_margin_95"]
    assert margin["draft"] > 0
    note = next(i for i in texts(at, "info") if i.startswith("How these figures were obtained"))
    assert f"a stratified random sample of {sampling['customers_run']:,} of the 60 customers" in note
    assert (
        f"Cash collected is within ±{margin['draft']:,.2f} USD (draft), the difference from the baseline "
        f"within ±{margin['delta']:,.2f} USD, at 95 %." in note
    ), note
    bars = [(b.proto.value, b.proto.text) for b in at.get("progress")]
    assert bars == [(100, "done")], bars
