"""The shipped rulesets (rules/*.yaml) each fire in a scenario, and quotes use promotions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.catalog import load_catalog
from engine.clock import TestClock
from engine.periods import Period
from engine.rules import References, RulesRuntime, discounts_from, load_ruleset, price_context, promotions_for
from engine.rules.promotions import quote_promotions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runtime(refs: References) -> tuple[RulesRuntime, TestClock]:
    clock = TestClock(datetime(2026, 6, 1, tzinfo=UTC))
    rt = RulesRuntime(clock)
    rt.install_many((load_ruleset(ROOT / "rules" / f"{n}.yaml", refs), 1)
                    for n in ("promotions", "access", "dunning", "notifications"))
    return rt, clock


def notified(rt: RulesRuntime, event: str, ctx: dict[str, Any]) -> list[str]:
    return [a.params["template"] for a in rt.evaluate(event, ctx).actions_named("notify")]


def test_promotions_education_time_limited_and_win_back(runtime: tuple[RulesRuntime, TestClock]) -> None:
    rt, clock = runtime
    edu = promotions_for(rt, price_context(plan="pro", customer={"segment": "edu"}))
    assert [(a.rule, a.params["percent"]) for a in edu] == [("edu-50", Decimal(50))]
    assert promotions_for(rt, price_context(plan="pro", customer={"segment": "smb"})) == []
    clock.set(datetime(2026, 11, 15, tzinfo=UTC))
    launch = promotions_for(rt, price_context(plan="pro"))
    assert [(a.rule, a.params["prices"], a.params["periods"]) for a in launch] == [("launch-2026", ("base",), 3)]
    assert promotions_for(rt, price_context(plan="free")) == []
    back = promotions_for(rt, price_context(plan="enterprise", customer={"tags": ["churned"]}))
    assert [(a.name, a.params["code"]) for a in back] == [("apply_coupon", "WINBACK30")]
    catalog = load_catalog(ROOT / "catalogs" / "saas.yaml")
    [d] = discounts_from(back, catalog, "enterprise")
    assert (d.percent, d.periods, d.source) == (Decimal(30), 2, "coupon:WINBACK30 (rule:promotions/win-back)")
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert promotions_for(rt, price_context(plan="pro")) == []


def test_access_suspended_keeps_only_data_export_and_partners_get_the_beta(runtime: tuple[RulesRuntime, TestClock]) -> None:
    rt, _ = runtime
    suspended = {"account": {"dunning_state": "suspended"}}
    assert rt.evaluate("access.check", {**suspended, "feature": "sso"}).access() == "deny"
    export = rt.evaluate("access.check", {**suspended, "feature": "data_export"})
    assert (export.access(), export.rule_ids) == ("allow", ["access/export-while-suspended"])
    partner = {"customer": {"tags": ["partner"]}, "feature": "beta_ai", "account": {"dunning_state": "active"}}
    assert rt.evaluate("access.check", partner).access() == "allow"
    d = rt.evaluate("access.check", {**partner, **suspended})
    assert d.access() == "deny" and d.rule_ids == ["access/suspended-read-only", "access/partner-beta"]


def test_dunning_retries_on_days_1_3_5_7_then_warns_suspends_and_cancels(runtime: tuple[RulesRuntime, TestClock]) -> None:
    rt, _ = runtime
    retries = []
    for attempt in range(1, 6):
        d = rt.evaluate("invoice.payment_failed", {"invoice": {"attempt": attempt}})
        retries += [a.params["after"] for a in d.actions_named("retry_payment")]
    assert retries == ["1d", "2d", "2d", "2d"]  # day 1, 3, 5, 7; the 5th failure is not retried
    # A hard decline is never retried, whatever the attempt (finding 6 of issue 15).
    for attempt in range(1, 6):
        hard = {"invoice": {"attempt": attempt, "retryable": False, "decline_code": "generic_decline"}}
        assert rt.evaluate("invoice.payment_failed", hard).actions_named("retry_payment") == []

    def step(days: int, state: str) -> list[tuple[str, str]]:
        out = []
        for s in rt.scheduled_rules():
            d = rt.evaluate_scheduled(s.ruleset, s.rule, {"invoice": {"status": "open", "days_overdue": days},
                                                           "account": {"dunning_state": state}})
            out += [(a.name, a.params.get("state") or a.params.get("template") or a.params.get("at")) for a in d.actions]
        return out

    assert step(6, "active") == []
    assert step(7, "active") == [("set_dunning_state", "warning"), ("notify", "account_warning")]
    assert step(8, "warning") == []
    assert step(14, "warning") == [("set_dunning_state", "suspended"), ("notify", "account_suspended")]
    assert step(30, "suspended") == [("set_dunning_state", "cancelled"), ("cancel_subscription", "now"),
                                     ("notify", "subscription_cancelled")]
    assert step(31, "cancelled") == []
    d = rt.evaluate("payment.succeeded", {"account": {"dunning_state": "suspended"}})
    assert [a.params.get("state") for a in d.actions_named("set_dunning_state")] == ["active"]


def test_notifications_for_each_trigger(runtime: tuple[RulesRuntime, TestClock]) -> None:
    rt, _ = runtime
    assert notified(rt, "invoice.finalized", {"invoice": {"total": 49}}) == ["invoice_issued"]
    assert notified(rt, "invoice.finalized", {"invoice": {"total": 0}}) == []  # a free plan's invoice
    assert notified(rt, "invoice.payment_failed", {"invoice": {"attempt": 1}}) == ["payment_retry_scheduled", "payment_failed"]
    soft = {"invoice": {"attempt": 1, "retryable": True}}
    assert notified(rt, "invoice.payment_failed", soft) == ["payment_retry_scheduled", "payment_failed"]
    hard = {"invoice": {"attempt": 1, "retryable": False}}
    assert notified(rt, "invoice.payment_failed", hard) == ["payment_method_needed"]
    assert notified(rt, "payment.succeeded", {}) == ["payment_succeeded"]
    assert notified(rt, "subscription.trial_will_end", {}) == ["trial_ending"]
    assert notified(rt, "usage.threshold_reached", {"event": {"properties": {"threshold": 80}}}) == ["quota_warning"]
    assert notified(rt, "usage.threshold_reached", {"event": {"properties": {"threshold": 100}}}) == ["quota_reached"]
    assert notified(rt, "access.denied", {"event": {"properties": {"offer": {"plan": "pro"}}}}) == ["upgrade_offer"]
    assert notified(rt, "access.denied", {"event": {"properties": {"offer": None}}}) == []


def test_quote_promotions_for_billing_quote_rules() -> None:
    catalog = load_catalog(ROOT / "catalogs" / "saas.yaml")
    period = Period(date(2026, 11, 1), date(2026, 12, 1))
    discounts, trace = quote_promotions(rules_path=ROOT / "rules", catalog=catalog, plan=catalog.plan("pro"),
                                        customer={"segment": "edu"}, usage={}, period=period, quantity=Decimal(1))
    assert [(d.percent, d.source) for d in discounts] == [(Decimal(50), "rule:promotions/edu-50"),
                                                           (Decimal(20), "rule:promotions/launch-2026")]
    assert [(t["ruleset"], t["rule"], t["actions"]) for t in trace] == [
        ("promotions", "edu-50", ["discount"]), ("promotions", "launch-2026", ["discount"])]
    discounts, trace = quote_promotions(rules_path=ROOT / "rules", catalog=catalog, plan=catalog.plan("pro"),
                                        customer={"segment": "smb"}, usage={}, period=Period(date(2026, 6, 1), date(2026, 7, 1)),
                                        quantity=Decimal(1))
    assert (discounts, trace) == ([], [])
