"""The promotion builder's pure functions: forms that write pricing, access and notification
rules and coupons; bad fields named, nothing written; what is written validates and acts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from engine import rules
from engine.catalog import load_catalog, load_catalog_text
from engine.clock import TestClock
from engine.console.drafts import check_draft
from engine.console.fields import FormInvalid
from engine.console.rule_builder import (
    AccessRuleSpec,
    CouponSpec,
    NotificationRuleSpec,
    PromotionSpec,
    write_access_rule,
    write_coupon,
    write_notification_rule,
    write_promotion,
)
from engine.periods import calendar_period
from engine.pricing import MetricUsage
from engine.pricing.quoting import period_document

ROOT = Path(__file__).resolve().parents[2]
SAAS = (ROOT / "catalogs" / "saas.yaml").read_text()
PROMOS = (ROOT / "rules" / "promotions.yaml").read_text()
ACCESS = (ROOT / "rules" / "access.yaml").read_text()


@pytest.fixture
def refs() -> rules.References:
    return rules.References.from_catalogs([load_catalog(ROOT / "catalogs" / "saas.yaml")], ROOT / "templates")


def fields_of(call) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(FormInvalid) as exc:
        call()
    return {p.field: p.message for p in exc.value.problems}


def edu_total(ruleset_text: str, segment: str) -> Decimal:
    catalog = load_catalog_text(SAAS)
    runtime = rules.pricing_runtime({"promotions": ruleset_text})
    doc = period_document(catalog, catalog.plan("pro"), calendar_period("month", date(2027, 3, 1)),
                          quantity=Decimal(1), usage={"api_calls": MetricUsage(Decimal(0))},
                          customer={"id": "c", "segment": segment, "country": "US"},
                          promotions=rules.RulePromotions(runtime))
    return doc.total


def test_an_edu_promotion_is_written_valid_and_discounts_a_quote(refs: rules.References) -> None:
    without = PROMOS.replace("customer.segment: edu", "customer.segment: nobody")
    spec = PromotionSpec(id="edu-spring", description="Spring offer for schools", segments=["edu"], plans=["pro"],
                         kind="percent", value="25", prices=["base"], periods="2",
                         valid_from="2027-01-01", valid_until="2027-06-30")
    text = write_promotion(without, spec, refs)
    assert text.startswith("ruleset: promotions")
    assert check_draft("ruleset", text, refs=refs).ok
    assert "edu-spring" in text and "valid_until: 2027-06-30" in text
    # Pro base 49.00 + 1 seat 10.00; 25 % off the base fee for edu
    assert edu_total(text, "edu") == Decimal("59.00") - Decimal("12.25")
    assert edu_total(text, "smb") == Decimal("59.00")


def test_promotion_bad_input_is_named_field_by_field(refs: rules.References) -> None:
    spec = PromotionSpec(id="edu-50", plans=["platinum"], prices=["nope"], kind="percent", value="150",
                         countries=["germany"], valid_from="2027-06-30", valid_until="2027-01-01")
    found = fields_of(lambda: write_promotion(PROMOS, spec, refs))
    assert found["id"] == "the ruleset already has a rule 'edu-50'; pick another id"
    assert found["plans"].startswith("there is no plan 'platinum'; known: enterprise, free, pro")
    assert found["prices"].startswith("there is no price 'nope'")
    assert found["value"] == "150 is not a percentage from 0 to 100"
    assert found["countries"] == "'germany' is not a country code such as DE or FR"
    assert found["valid_until"] == "2027-01-01 is before the start 2027-06-30"
    coupon = PromotionSpec(id="x", kind="coupon", value="NOPE")
    assert fields_of(lambda: write_promotion(PROMOS, coupon, refs))["value"].startswith("there is no coupon 'NOPE'")


def test_tags_attributes_amount_and_coupon_promotions_validate(refs: rules.References) -> None:
    text = write_promotion(PROMOS, PromotionSpec(id="vip", tags=["vip", "early"], countries=["DE", "FR"],
                                                 attributes={"employees": "small"}, kind="amount", value="5.00"), refs)
    text = write_promotion(text, PromotionSpec(id="welcome", plans=["pro"], kind="coupon", value="WELCOME20"), refs)
    check = check_draft("ruleset", text, refs=refs)
    assert check.ok, check.errors
    assert '{customer.attributes.employees: small}' in text and 'amount: "5.00"' in text


def test_access_rules_for_the_common_cases(refs: rules.References) -> None:
    assert check_draft("ruleset", write_access_rule(ACCESS, AccessRuleSpec(id="edu-audit", feature="audit_log", tag="edu"),
                                                   refs), refs=refs).ok
    text = write_access_rule("ruleset: access\nrules: []\n", AccessRuleSpec(id="edu-audit", feature="audit_log", tag="edu"), refs)
    text = write_access_rule(text, AccessRuleSpec(id="suspended-no-api", case="deny_suspended",
                                                  except_features=["data_export", "sso"]), refs)
    check = check_draft("ruleset", text, refs=refs)
    assert not check.errors, check.errors
    rt = rules.RulesRuntime(TestClock(datetime(2027, 1, 1, tzinfo=UTC)))
    rt.install_many([(rules.load_ruleset_text(text, "access.yaml", refs), 1)])
    edu = {"customer": {"tags": ["edu"]}, "feature": "audit_log", "account": {"dunning_state": "active"}}
    assert rt.evaluate("access.check", edu).access() == "allow"
    suspended = {"customer": {"tags": []}, "feature": "api", "account": {"dunning_state": "suspended"}}
    assert rt.evaluate("access.check", suspended).access() == "deny"
    assert rt.evaluate("access.check", {**suspended, "feature": "sso"}).access() != "deny"
    assert "{feature: {not_in: [data_export, sso]}}" in text
    found = fields_of(lambda: write_access_rule(ACCESS, AccessRuleSpec(id="x", feature="teleport", tag=""), refs))
    assert found["feature"].startswith("there is no feature 'teleport'")
    assert found["tag"] == "give the customer tag that unlocks it"


def test_notification_rule(refs: rules.References) -> None:
    base = "ruleset: notices\n# comments stay\nrules: []\n"
    text = write_notification_rule(base, NotificationRuleSpec(id="paid", event="invoice.paid",
                                                              template="payment_succeeded", channels=["email", "in_app"]), refs)
    assert "# comments stay" in text
    assert check_draft("ruleset", text, refs=refs).ok
    found = fields_of(lambda: write_notification_rule(base, NotificationRuleSpec(
        id="p", event="invoice.eaten", template="nope", channels=[]), refs))
    assert set(found) == {"event", "template", "channels"}


def test_coupon_with_expiry_and_redemption_limit() -> None:
    text = write_coupon(SAAS, CouponSpec(code="SPRING25", value="25", duration="repeating", periods="3",
                                         applies_to=["pro"], max_redemptions="100", expires="2027-05-31"),
                        today=date(2027, 1, 1))
    coupon = load_catalog_text(text).coupon("SPRING25")
    assert (coupon.percent_off, coupon.periods, coupon.max_redemptions, coupon.expires) == (
        Decimal(25), 3, 100, date(2027, 5, 31))
    found = fields_of(lambda: write_coupon(SAAS, CouponSpec(code="FLAT10", kind="amount", value="-3",
                                                            duration="repeating", applies_to=["gold"],
                                                            max_redemptions="0", expires="2026-12-01"),
                                           today=date(2027, 1, 1)))
    assert found == {
        "code": "a coupon 'FLAT10' already exists",
        "value": "-3 is negative; a price is 0 or more",
        "periods": "a repeating coupon needs how many periods it lasts",
        "applies_to": "there is no plan 'gold' in this catalog",
        "max_redemptions": "0 is below 1",
        "expires": "2026-12-01 has passed already",
    }
