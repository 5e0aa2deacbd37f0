"""`billing simulate` as a pricing manager runs it: the synthetic cohort
has realistic usage by default, says when a change cannot show on its inputs, and prices with
the published promotion rules exactly as POST /v1/quotes does (issue 15, findings 2 and 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import sales
from engine.api import create_key
from engine.config import Settings
from engine.rules import publish_ruleset
from engine.system import build_system
from tests.api.conftest import start_server
from tests.cli.runner import invoke

ROOT = Path(__file__).resolve().parents[2]
BILLING = str(Path(sys.executable).with_name("billing"))
SAAS = ROOT / "catalogs" / "saas.yaml"
D = Decimal


def billing(*argv: str, cwd: Path, database: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BILLING_DATABASE_URL": database or f"sqlite:///{cwd}/none.db"}
    return invoke("simulate", *argv, cwd=cwd, env=env)


@pytest.fixture
def tier_draft(tmp_path: Path) -> Path:
    """Pro's second API tier (10,001 to 100,000 calls) from 0.002 to 0.003 a call."""
    text = SAAS.read_text()
    assert text.count('"0.002"') == 1
    draft = tmp_path / "draft.yaml"
    draft.write_text(text.replace('"0.002"', '"0.003"'))
    return draft


def _run(tmp_path: Path, draft: Path, *extra: str) -> dict[str, Any]:
    result = billing(
        "--baseline",
        str(SAAS),
        "--draft",
        str(draft),
        "--customers",
        "40",
        "--months",
        "2",
        "--start",
        "2027-01-01",
        "--json",
        *extra,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_the_default_cohort_uses_the_plans_so_a_tier_price_change_shows(tmp_path: Path, tier_draft: Path) -> None:
    out = _run(tmp_path, tier_draft)
    plans = {p["plan"]: p for p in out["by_plan"]}
    assert D(plans["pro"]["delta"]) > 0, out["totals"]  # on main: 0.00, every customer at zero usage
    assert D(out["totals"]["delta"]) == D(plans["pro"]["delta"])
    assert not [w for w in out["warnings"] if "cannot exercise" in w]
    assert "typical usage" in out["cohort"]
    # Seeded: the same flags give the same cohort, another seed another one.
    assert _run(tmp_path, tier_draft)["totals"] == out["totals"]
    assert _run(tmp_path, tier_draft, "--seed", "8")["totals"] != out["totals"]


def test_usage_the_change_cannot_reach_is_said_not_a_silent_zero(tmp_path: Path, tier_draft: Path) -> None:
    none = _run(tmp_path, tier_draft, "--usage", "none")
    assert D(none["totals"]["delta"]) == 0
    [warning] = [w for w in none["warnings"] if "cannot exercise" in w]
    assert "tier 2 of price 'calls' of plan 'pro'" in warning and "api_calls" in warning
    below = _run(tmp_path, tier_draft, "--usage", "api_calls=5000")  # all inside the free first tier
    assert any("cannot exercise" in w and "more than 5000 api_calls" in w for w in below["warnings"])
    above = _run(tmp_path, tier_draft, "--usage", "api_calls=lognormal:40000:0.5")
    assert D(above["totals"]["delta"]) > 0 and not any("cannot exercise" in w for w in above["warnings"])
    text = billing(
        "--baseline",
        str(SAAS),
        "--draft",
        str(tier_draft),
        "--customers",
        "5",
        "--months",
        "1",
        "--usage",
        "none",
        cwd=tmp_path,
    )
    assert text.returncode == 0 and "warning: cannot exercise" in text.stdout


@pytest.mark.parametrize(
    ("flag", "field"),
    [("api_calls=lots", "--usage"), ("nope=5", "--usage"), ("api_calls=uniform:9:1", "--usage")],
)
def test_bad_usage_names_the_flag(tmp_path: Path, tier_draft: Path, flag: str, field: str) -> None:
    result = billing(
        "--baseline", str(SAAS), "--draft", str(tier_draft), "--customers", "5", "--usage", flag, cwd=tmp_path
    )
    assert result.returncode == 1 and field in result.stderr and result.stdout == ""


@pytest.fixture
def published(tmp_path: Path) -> Iterator[tuple[str, httpx.Client, httpx.Client]]:
    """An engine with the SaaS catalog and the shipped promotion rules published, served over
    HTTP; yields its database URL and admin and product clients."""
    url = f"sqlite:///{tmp_path}/engine.db"
    system = build_system(Settings(database_url=url, test_clock="2026-11-20T00:00:00Z"))
    with system.db.session() as s:
        sales.publish_catalog(s, str(SAAS), "test", clock=system.clock)
        publish_ruleset(s, ROOT / "rules" / "promotions.yaml", "test", clock=system.clock)
        _, admin = create_key(s, "admin", now=system.clock.now())
        _, product = create_key(s, "product", now=system.clock.now())
    system.sync_rules()
    stop = threading.Event()
    server, thread, base = start_server(system)
    try:
        with (
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as a,
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {product}"}, timeout=30) as p,
        ):
            yield url, a, p
    finally:
        server.should_exit = True
        thread.join(10)
        stop.set()
        system.db.dispose()


def test_a_simulated_edu_period_equals_the_quote_cent_for_cent(
    tmp_path: Path, published: tuple[str, httpx.Client, httpx.Client]
) -> None:
    url, admin, product = published
    r = admin.post(
        "/v1/customers",
        json={"id": "cus_edu", "email": "edu@example.com", "name": "School", "country": "DE", "segment": "edu"},
    )
    assert r.status_code == 201, r.text
    # December 2026: the education discount and the launch promotion (Pro base fee) both hold.
    r = product.post(
        "/v1/quotes",
        json={
            "plan": "pro",
            "customer_id": "cus_edu",
            "quantity": "3",
            "usage": {"api_calls": "25000"},
            "period": "2026-12-01/2027-01-01",
        },
    )
    assert r.status_code == 200, r.text
    quote = r.json()
    assert {d["source"] for d in quote["discounts"]} == {"rule:promotions/edu-50", "rule:promotions/launch-2026"}
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("customer_id,plan,quantity,segment,country,api_calls\ncus_edu,pro,3,edu,DE,25000\n")
    result = billing(
        "--baseline",
        str(SAAS),
        "--draft",
        str(SAAS),
        "--csv",
        str(cohort),
        "--months",
        "1",
        "--start",
        "2026-12-01",
        "--json",
        cwd=tmp_path,
        database=url,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    before_tax = D(quote["subtotal"]) - D(quote["discount"])
    assert D(out["totals"]["baseline"]) == before_tax == D(out["totals"]["draft"])
    assert D(out["totals"]["baseline_discount"]) == D(quote["discount"]) > 0
    simulated = {d["source"]: D(d["baseline"]) for d in out["discounts"]}
    assert simulated == {d["source"]: D(d["amount"]) for d in quote["discounts"]}
    assert (
        next(d for d in out["discounts"] if d["source"] == "rule:promotions/edu-50")["reason"] == "Education discount"
    )


def test_proposed_pricing_rules_on_the_draft_side(tmp_path: Path) -> None:
    rules_now = ROOT / "rules" / "promotions.yaml"
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text(
        rules_now.read_text().replace("percent: 50, reason: Education", "percent: 60, reason: Education")
    )
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("customer_id,plan,quantity,segment,api_calls\ns,pro,3,edu,15000\nb,pro,1,smb,0\n")
    common = [
        "--baseline",
        str(SAAS),
        "--draft",
        str(SAAS),
        "--months",
        "1",
        "--start",
        "2027-01-01",
        "--json",
        "--rules",
        str(rules_now),
        "--draft-rules",
        str(proposed),
    ]
    result = billing(*common, "--csv", str(cohort), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    # s: 49 + 3 x 10 + 5,000 x 0.002 = 89.00 -> half off 44.50, 60 % off 35.60; b pays 59.00 either way.
    assert (out["totals"]["baseline"], out["totals"]["draft"]) == ("103.50", "94.60")
    assert out["pay_less"][0]["customer_id"] == "s" and out["totals"]["pay_less"] == 1
    # No edu customer in the cohort: the proposed rules cannot show, and the output says so.
    smb = tmp_path / "smb.csv"
    smb.write_text("customer_id,plan,quantity,segment,api_calls\nb,pro,1,smb,0\n")
    out = json.loads(billing(*common, "--csv", str(smb), cwd=tmp_path).stdout)
    assert any("same discounts" in w for w in out["warnings"])
    bad = billing(*common[:-2], "--draft-rules", str(tmp_path / "missing.yaml"), "--csv", str(smb), cwd=tmp_path)
    assert bad.returncode == 1 and "--draft-rules" in bad.stderr


# What-if that answers (issue 18): usage from the store, moves and shares, features lost -------

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


@pytest.fixture
def team_draft(tmp_path: Path) -> Path:
    """The SaaS catalog with a new, cheaper Team plan (no SSO, 5 projects) and GPU hours at 2.50."""
    text = SAAS.read_text().replace("  pro-annual:", TEAM, 1).replace('unit_amount: "2.40"', 'unit_amount: "2.50"')
    draft = tmp_path / "team.yaml"
    draft.write_text(text)
    return draft


@pytest.fixture
def stored_gpu(tmp_path: Path) -> str:
    """A store where 4 Enterprise customers, subscribed since July 2026, each used exactly 1,000
    GPU hours (10 events of 100) in each of August, September and October (above the plan's
    minimum, so a GPU price shows); the clock is in November."""
    url = f"sqlite:///{tmp_path}/store.db"
    system = build_system(Settings(database_url=url, test_clock="2026-07-15T00:00:00Z"))
    try:
        with system.db.session() as s:
            sales.publish_catalog(s, str(SAAS), "test", clock=system.clock)
            for i in range(4):
                sales.create_customer(s, {"id": f"ent{i}", "name": f"Ent {i}", "email": f"e{i}@x.io"}, clock=system.clock)
                sales.create_subscription(s, f"ent{i}", "enterprise", clock=system.clock, quantity=D(5))
        events = [
            {"id": f"g{i}{m}{k}", "type": "gpu.used", "customer_id": f"ent{i}",
             "time": f"2026-{m:02d}-1{k}T10:00:00+00:00", "properties": {"hours": 100, "region": "eu"}}
            for i in range(4) for m in (8, 9, 10) for k in range(10)
        ]
        with system.db.session() as s:
            sales.ingest_events(s, events, clock=system.clock)
    finally:
        system.db.dispose()
    return url


def _with_clock(tmp_path: Path, draft: Path, url: str, *extra: str) -> dict[str, Any]:
    env = {**os.environ, "BILLING_DATABASE_URL": url, "BILLING_TEST_CLOCK": "2026-11-20T00:00:00Z"}
    argv = ["--baseline", str(SAAS), "--draft", str(draft), "--months", "2", "--start", "2026-12-01",
            "--rules", "none", "--json", *extra]
    result = invoke("simulate", *argv, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_usage_defaults_to_the_stores_distribution_and_says_so(tmp_path: Path, team_draft: Path, stored_gpu: str) -> None:
    out = _with_clock(tmp_path, team_draft, stored_gpu, "--customers", "200")
    assert "usage from 120 stored events of plan enterprise, metric gpu_hours" in " ".join(out["usage_source"])
    # Plans the store has no usage of say so, rather than pricing a silent zero.
    assert any(s.startswith("plan pro, metric api_calls: no stored usage, typical usage around") for s in
               out["usage_source"])
    # Every synthetic Enterprise customer-month draws a stored month: 1,000 hours, 0.10 more an hour.
    ent = next(p for p in out["by_plan"] if p["plan"] == "enterprise")
    assert D(ent["delta"]) == D("100.00") * 2 * ent["customers"] > 0
    typical = _with_clock(tmp_path, team_draft, stored_gpu, "--customers", "200", "--usage", "typical")
    assert next(p for p in typical["by_plan"] if p["plan"] == "enterprise")["delta"] != ent["delta"]
    assert not any("stored events" in s for s in typical["usage_source"])


def test_move_and_share_show_who_pays_less_and_the_features_they_lose(tmp_path: Path, team_draft: Path) -> None:
    out = _run(tmp_path, team_draft, "--customers", "400", "--share", "team=30%:pro", "--move", "enterprise=pro")
    pro = next(p for p in out["by_plan"] if p["plan"] == "pro")["customers"]
    features = {(f["plan"], f["draft_plan"], f["feature"]): f for f in out["features"]}
    moved = features[("pro", "team", "sso")]["customers"]
    assert 0.15 * pro < moved < 0.45 * pro and features[("pro", "team", "sso")]["change"] == "lost"
    assert features[("pro", "team", "projects")]["change"] == "reduced"
    ent = next(p for p in out["by_plan"] if p["plan"] == "enterprise")
    assert features[("enterprise", "pro", "audit_log")]["customers"] == ent["customers"]
    # Team is cheaper for everyone it takes; Enterprise's heavy API users would pay more on Pro.
    assert out["totals"]["pay_less"] >= moved and out["totals"]["pay_more"] > 0
    assert {r["draft_plan"] for r in out["pay_less"]} <= {"team", "pro"}
    assert {(r["plan"], r["draft_plan"]) for r in out["pay_more"]} == {("enterprise", "pro")}
    # MRR over the months: the annual plan's invoice spread over its twelve months.
    first = out["by_month"][0]
    assert D(first["mrr_baseline"]) < D(first["baseline"])  # pro-annual bills a year up front
    assert D(first["mrr_draft"]) < D(first["mrr_baseline"])


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--share", "team=150%", "--share"),
        ("--share", "gold=10%", "'gold' is not a plan of the draft"),
        ("--share", "team=10%:nope", "'nope' is not a plan of the baseline"),
        ("--move", "pro", "--move"),
        ("--move", "pro=gold", "'gold' is not a plan of the draft"),
    ],
)
def test_bad_moves_name_the_flag_and_change_nothing(
    tmp_path: Path, team_draft: Path, flag: str, value: str, says: str
) -> None:
    result = billing("--baseline", str(SAAS), "--draft", str(team_draft), "--customers", "5", flag, value,
                     cwd=tmp_path)
    assert result.returncode == 1 and says in result.stderr and result.stdout == ""


def test_ten_thousand_customers_with_usage_give_a_non_zero_delta(tmp_path: Path, tier_draft: Path) -> None:
    out = _run(tmp_path, tier_draft, "--customers", "10000")
    assert out["cohort"].startswith("10,000 synthetic customers")
    assert D(out["totals"]["delta"]) > 0 and out["totals"]["pay_more"] > 1000
    assert any("plan pro, metric api_calls" in s for s in out["usage_source"])
