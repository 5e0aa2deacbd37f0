"""The plan builder's pure functions: each bad field named with a plain message, nothing
written; a good form writes catalog YAML that validates and prices as the form says."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from engine.catalog import load_catalog_text
from engine.console.fields import FormInvalid
from engine.console.plan_builder import EntitlementSpec, PlanSpec, PriceSpec, TierSpec, plan_spec, write_plan
from engine.periods import calendar_period
from engine.pricing import MetricUsage, price_period

SAAS = (Path(__file__).resolve().parents[2] / "catalogs" / "saas.yaml").read_text()


def team(**changes: object) -> PlanSpec:
    spec = PlanSpec(
        id="team", name="Team", trial_days="14", minimum_amount="100.00", upgrade_to=["enterprise"],
        prices=[
            PriceSpec(id="base", model="flat", amount="29.00"),
            PriceSpec(id="seats", model="per_unit", unit_amount="8.00", included="3"),
            PriceSpec(id="calls", model="graduated", metric="api_calls", tiers=[
                TierSpec("10000", "0"), TierSpec("100000", "0.002"), TierSpec("", "0.001", "5.00")]),
        ],
        entitlements=[EntitlementSpec("sso", "true"), EntitlementSpec("projects", "10"),
                      EntitlementSpec("api", limit="200000", period="month", overage="notify")],
    )
    for k, v in changes.items():
        setattr(spec, k, v)
    return spec


def problems(spec: PlanSpec, text: str = SAAS) -> dict[str, str]:
    with pytest.raises(FormInvalid) as exc:
        write_plan(text, spec)
    return {p.field: p.message for p in exc.value.problems}


def test_a_new_plan_is_written_with_comments_kept_and_prices_as_the_form_says() -> None:
    text = write_plan(SAAS, team())
    assert text.startswith("# A SaaS analytics product")  # the author's comment stays
    catalog = load_catalog_text(text)
    plan = catalog.plan("team")
    assert (plan.trial_days, plan.minimum_amount, plan.upgrade_to) == (14, Decimal("100.00"), ("enterprise",))
    seats = plan.price("seats")  # 3 included seats: a free first tier
    assert seats.model == "graduated" and [t.unit_amount for t in seats.tiers] == [Decimal(0), Decimal("8.00")]
    assert plan.entitlements["api"].overage == "notify" and plan.entitlements["api"].limit == 200000
    assert plan.entitlements["projects"].quantity == 10
    period = calendar_period("month", date(2027, 1, 1))
    bill = price_period(catalog, plan, period, usage={"api_calls": MetricUsage(Decimal(15000))}, quantity=Decimal(5))
    # 29 base + 2 seats above the 3 included at 8 + 5,000 calls at 0.002 = 55, topped up to the 100 minimum
    amounts = {line.price_id: line.amount for line in bill.lines}
    assert (amounts["base"], amounts["seats"], amounts["calls"]) == (Decimal("29.00"), Decimal("16.00"), Decimal("10.00"))
    assert sum(amounts.values(), Decimal(0)) == Decimal("100.00")


def test_editing_reads_the_plan_back_and_replaces_it_in_place() -> None:
    text = write_plan(SAAS, team())
    spec = plan_spec(text, "team")
    assert spec.prices[2].tiers[1].unit_amount == "0.002"
    spec.prices[2].tiers[1].unit_amount = "0.0025"
    spec.name = "Team plus"
    after = write_plan(text, spec, original_id="team")
    catalog = load_catalog_text(after)
    assert catalog.plan("team").name == "Team plus"
    assert catalog.plan("team").price("calls").tiers[1].unit_amount == Decimal("0.0025")
    assert list(catalog.plans) == ["free", "pro", "enterprise", "pro-annual", "team"]


def test_tiers_out_of_order_negative_price_and_float_noise_are_named() -> None:
    bad = team(prices=[
        PriceSpec(id="base", model="flat", amount="-5"),
        PriceSpec(id="calls", model="graduated", metric="api_calls", tiers=[
            TierSpec("100000", "0"), TierSpec("10000", "0.30000000000000004"), TierSpec("", "abc")]),
        PriceSpec(id="fee", model="flat", amount="9.999"),
    ])
    found = problems(bad)
    assert found["prices[1].amount"] == "-5 is negative; a price is 0 or more"
    assert found["prices[2].tiers[2].up_to"] == "tiers must go up: 10000 is not above the tier before (100000)"
    assert "has 17 decimals; a unit price has at most 6 decimals" in found["prices[2].tiers[2].unit_amount"]
    assert found["prices[2].tiers[3].unit_amount"] == "'abc' is not an amount; write a number such as 49.00"
    assert found["prices[3].amount"] == "9.999 has 3 decimals; USD amounts have 2 decimals"


def test_references_and_shape_problems() -> None:
    bad = team(id="Team!", name="", upgrade_to=["platinum"], trial_days="two",
               prices=[PriceSpec(id="calls", model="graduated", metric="calls_made", tiers=[TierSpec("", "1"), TierSpec("", "2")])],
               entitlements=[EntitlementSpec("teleport"), EntitlementSpec("sso", "maybe")])
    found = problems(bad)
    assert "starting with a letter" in found["id"]
    assert found["name"] == "give the plan the name customers see"
    assert found["upgrade_to[1]"] == "there is no plan 'platinum' in this catalog"
    assert found["trial_days"] == "'two' is not a whole number"
    assert found["prices[1].metric"].startswith("there is no metric 'calls_made'; the catalog has ")
    assert "only the last tier is open" in found["prices[1].tiers[1].up_to"]
    assert found["entitlements[1].feature"].startswith("there is no feature 'teleport'")
    assert found["entitlements[2].value"] == "a yes/no feature: write true or false"


def test_a_duplicate_plan_id_is_refused_and_nothing_changes() -> None:
    found = problems(team(id="pro"))
    assert found["id"] == "a plan 'pro' already exists; pick another id"


@pytest.mark.parametrize("model,fields,expect", [
    ("volume", {"tiers": [TierSpec("50", "25.00"), TierSpec("", "20.00")]}, None),
    ("package", {"package_size": "1000", "amount": "5.00", "free_units": "10000", "metric": "api_calls"}, None),
    ("percentage", {"rate": "2.9", "fixed_amount": "0.30", "metric": "gpu_hours"}, None),
    ("graduated_percentage", {"metric": "gpu_hours", "tiers": [TierSpec("1000", rate="3"), TierSpec("", rate="2")]}, None),
    ("per_unit", {"unit_amount": "0.10", "metric": "storage_gb", "divide_by": "10", "round": "up"}, None),
    ("package", {"amount": "5.00"}, "prices[1].package_size"),
    ("percentage", {"rate": "150", "metric": "gpu_hours"}, "prices[1].rate"),
    ("flat", {"amount": "5.00", "metric": "api_calls"}, "prices[1].metric"),
])
def test_every_price_model(model: str, fields: dict[str, object], expect: str | None) -> None:
    price = PriceSpec(id="p", model=model, **fields)  # type: ignore[arg-type]
    spec = team(prices=[price], entitlements=[])
    if expect is None:
        catalog = load_catalog_text(write_plan(SAAS, spec))
        assert catalog.plan("team").price("p").model == model
    else:
        assert expect in problems(spec)


def test_the_comparison_reads_as_a_customer_would() -> None:
    from engine.console.plan_compare import compare_plans

    catalog = load_catalog_text(write_plan(SAAS, team()))
    rows = {r[""]: r for r in compare_plans(catalog, ["free", "team", "enterprise"])}
    assert rows["Free trial"]["Team"] == "14 days"
    assert rows["Minimum per period"]["Enterprise"] == "2,000.00 USD"
    assert rows["Price: seats"]["Team"] == "up to 3: free; above 3: 8.00 USD per seat (each tier its own units)"
    assert rows["Price: calls"]["Team"].startswith("up to 10,000: free; up to 100,000: 0.002 USD each;")
    assert rows["API calls"]["Free"] == "1,000 per month, then blocked"
    assert rows["API calls"]["Team"] == "200,000 per month, then you are told"
    assert rows["Single sign-on"] == {"": "Single sign-on", "Free": "—", "Team": "✓", "Enterprise": "✓"}
    assert rows["Upgrades to"]["Team"] == "Enterprise"


def test_the_page_fields_map_to_the_spec_and_back() -> None:
    from engine.console.plan_form import fields_from_spec, spec_from_fields

    spec = team()
    assert spec_from_fields(fields_from_spec(spec)) == spec
