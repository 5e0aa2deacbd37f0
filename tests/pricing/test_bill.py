"""Bills: minimum commitment, trials, coupons, discounts, tax, proration, and the example catalogs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from engine.catalog import load_catalog
from engine.periods import Period
from engine.pricing import (
    CouponError,
    Discount,
    MetricUsage,
    bill_to_dict,
    check_redeemable,
    coupon_applies_in_period,
    coupon_discount,
    price_period,
    prorate_change,
    tax_for,
)

NOV = Period(date(2026, 11, 1), date(2026, 12, 1))  # 30 days
SAAS = load_catalog("catalogs/saas.yaml")
CONTENT = load_catalog("catalogs/content.yaml")
PAYMENTS = load_catalog("catalogs/payments.yaml")


def test_saas_pro_matches_the_formats_example() -> None:
    bill = price_period(SAAS, SAAS.plan("pro"), NOV, quantity=D(3), usage={"api_calls": MetricUsage(D(15000))})
    out = bill_to_dict(bill, SAAS.rounder)
    calls = next(x for x in out["lines"] if x["price_id"] == "calls")
    assert calls["amount"] == "10.00"
    assert calls["tiers"] == [
        {"tier": 1, "quantity": "10000", "amount": "0.00"},
        {"tier": 2, "quantity": "5000", "amount": "10.00"},
    ]
    assert out["subtotal"] == "89.00" and out["total"] == "89.00"  # 49 + 3 x 10 + 10


def test_enterprise_minimum_commitment_tops_up_the_shortfall() -> None:
    # 1500 platform + 10 seats x 25 (volume tier 1) = 1750 ; package calls: 0 ; below 2000 -> 250 true-up
    bill = price_period(SAAS, SAAS.plan("enterprise"), NOV, quantity=D(10))
    true_up = [x for x in bill.lines if x.kind == "minimum_commitment"]
    assert len(true_up) == 1 and true_up[0].amount == D("250.00")
    assert bill.total == D("2000.00")
    # Above the minimum there is no true-up: 60 seats -> volume tier 2: 60 x 20 = 1200 + 1500
    bill = price_period(SAAS, SAAS.plan("enterprise"), NOV, quantity=D(60))
    assert not [x for x in bill.lines if x.kind == "minimum_commitment"]
    assert bill.total == D("2700.00")


def test_enterprise_usage_lines() -> None:
    usage = {
        "api_calls": MetricUsage(D(1_250_001)),
        "gpu_hours": MetricUsage(D("10.5")),
        "storage_gb": MetricUsage(D(101)),
    }
    bill = price_period(SAAS, SAAS.plan("enterprise"), NOV, quantity=D(10), usage=usage)
    by_id = {x.price_id: x.amount for x in bill.lines}
    assert by_id["calls"] == D("150.00")  # 250,001 over the free million -> 3 started packages x 50
    assert by_id["gpu"] == D("25.20")  # 10.5 x 2.40
    assert by_id["storage"] == D("1.10")  # 101 GB / 10, rounded up = 11 x 0.10
    # 1500 + 250 + 150 + 25.20 + 1.10 = 1926.30 -> true-up 73.70 to the 2000 minimum
    assert by_id["minimum_commitment"] == D("73.70")


def test_trial_waives_in_advance_prices_but_not_usage() -> None:
    pro = SAAS.plan("pro")
    usage = {"api_calls": MetricUsage(D(20000))}
    bill = price_period(SAAS, pro, NOV, quantity=D(2), usage=usage, trial_end=date(2026, 12, 1))
    by_id = {x.price_id: x for x in bill.lines}
    assert by_id["base"].amount == D("0.00") and by_id["base"].note == "trial"
    assert by_id["seats"].amount == D("0.00")
    assert by_id["calls"].amount == D("20.00")  # 10,000 x 0.002


def test_trial_ending_mid_period_charges_the_rest_by_days() -> None:
    # Trial ends Nov 16: 15 of 30 days are charged: 49 x 15/30 = 24.50 ; seats 2 x 10 x 1/2 = 10
    bill = price_period(SAAS, SAAS.plan("pro"), NOV, quantity=D(2), trial_end=date(2026, 11, 16))
    by_id = {x.price_id: x.amount for x in bill.lines}
    assert by_id["base"] == D("24.50") and by_id["seats"] == D("10.00")


def test_mid_period_start_prorates_and_rounds_once_per_line() -> None:
    # Start Nov 21: 10 of 30 days -> 49 x 10 / 30 = 16.333.. -> 16.33
    bill = price_period(SAAS, SAAS.plan("pro"), NOV, quantity=D(1), charge_from=date(2026, 11, 21))
    by_id = {x.price_id: x.amount for x in bill.lines}
    assert by_id["base"] == D("16.33")
    assert by_id["seats"] == D("3.33")
    assert bill.total == D("19.66")  # the sum of the rounded lines, not round(16.333 + 3.333)


def test_timings_select_in_advance_or_in_arrears_lines() -> None:
    pro = SAAS.plan("pro")
    advance = price_period(SAAS, pro, NOV, timings={"in_advance"})
    arrears = price_period(SAAS, pro, NOV, timings={"in_arrears"}, usage={"api_calls": MetricUsage(D(10001))})
    assert {x.price_id for x in advance.lines} == {"base", "seats"}
    assert [(x.price_id, x.amount) for x in arrears.lines] == [("calls", D("0.00"))]  # 1 x 0.002 -> 0.00


class TestCoupons:
    def test_percent_coupon_on_pro(self) -> None:
        coupon = SAAS.coupon("WELCOME20")
        check_redeemable(coupon, "pro", date(2026, 11, 1))
        bill = price_period(SAAS, SAAS.plan("pro"), NOV, quantity=D(1), discounts=[coupon_discount(coupon)])
        assert bill.subtotal == D("59.00") and bill.discount == D("11.80") and bill.total == D("47.20")

    def test_coupon_rules(self) -> None:
        welcome = SAAS.coupon("WELCOME20")
        with pytest.raises(CouponError, match="applies to pro"):
            check_redeemable(welcome, "enterprise", date(2026, 11, 1))
        with pytest.raises(CouponError, match="expired on 2027-01-31"):
            check_redeemable(welcome, "pro", date(2027, 2, 1))
        with pytest.raises(CouponError, match="500 redemptions"):
            check_redeemable(welcome, "pro", date(2026, 11, 1), redemptions=500)
        check_redeemable(welcome, "pro", date(2027, 1, 31))  # the expiry day itself still counts

    def test_durations(self) -> None:
        assert [coupon_applies_in_period(SAAS.coupon("WELCOME20"), i) for i in range(5)] == [
            True,
            True,
            True,
            False,
            False,
        ]
        assert [coupon_applies_in_period(SAAS.coupon("FLAT10"), i) for i in range(2)] == [True, False]

    def test_amount_coupon_never_exceeds_the_bill(self) -> None:
        cheap = CONTENT.plan("ebook-bundle")
        bill = price_period(CONTENT, cheap, NOV, discounts=[Discount(amount=D("50.00"), source="x")])
        assert bill.discount == D("29.99") and bill.total == D("0.00")


def test_discounts_stack_in_order_on_what_is_left() -> None:
    pro = SAAS.plan("pro")
    bill = price_period(
        SAAS,
        pro,
        NOV,
        quantity=D(1),
        discounts=[
            Discount(percent=D(50), prices=("base",), source="rule:promotions/edu"),
            Discount(percent=D(20), source="coupon:WELCOME20"),
        ],
    )
    # base 49 -> 50% = 24.50 ; then 20% of what is left (24.50 + 10) = 6.90 -> total discount 31.40
    assert [d.amount for d in bill.discounts] == [D("24.50"), D("6.90")]
    assert bill.total == D("27.60")


def test_tax_by_country_and_reverse_charge() -> None:
    pro = SAAS.plan("pro")
    ch = price_period(SAAS, pro, NOV, tax=tax_for(SAAS, {"country": "CH"}))
    assert ch.tax == D("4.78")  # 59 x 8.1% = 4.779 -> 4.78
    assert ch.total == D("63.78")
    b2b = price_period(SAAS, pro, NOV, tax=tax_for(SAAS, {"country": "DE", "tax_id": "DE123456789"}))
    assert b2b.tax == D("0.00") and b2b.tax_decision.reverse_charge
    nowhere = price_period(SAAS, pro, NOV, tax=tax_for(SAAS, {"country": "US"}))
    assert nowhere.tax == D("0.00") and not nowhere.tax_decision.reverse_charge


class TestProration:
    def test_upgrade_mid_period_credits_the_old_and_charges_the_new(self) -> None:
        pro, annual = SAAS.plan("pro"), SAAS.plan("enterprise")
        # Nov 21: 10 of 30 days remain. Old: base 49 + 2 seats x 10 = 69 -> credit 23.00
        # New enterprise platform 1500 x 1/3 = 500 ; seats 2 x 25 = 50 x 1/3 = 16.67
        lines = prorate_change(
            SAAS, NOV, date(2026, 11, 21), old_plan=pro, old_quantity=D(2), new_plan=annual, new_quantity=D(2)
        )
        assert [(x.price_id, x.amount) for x in lines] == [
            ("base", D("-16.33")),
            ("seats", D("-6.67")),
            ("platform", D("500.00")),
            ("seats", D("16.67")),
        ]

    def test_quantity_change(self) -> None:
        pro = SAAS.plan("pro")
        lines = prorate_change(
            SAAS, NOV, date(2026, 11, 16), old_plan=pro, old_quantity=D(2), new_plan=pro, new_quantity=D(5)
        )
        # half the period: base credit -24.50 and charge 24.50 ; seats -10.00 and +25.00
        assert sum(x.amount for x in lines) == D("15.00")

    def test_change_outside_the_period_is_refused(self) -> None:
        with pytest.raises(ValueError, match="outside the period"):
            prorate_change(
                SAAS,
                NOV,
                date(2026, 12, 1),
                old_plan=SAAS.plan("pro"),
                old_quantity=D(1),
                new_plan=SAAS.plan("pro"),
                new_quantity=D(2),
            )


def test_content_catalog_one_time_and_yearly() -> None:
    once = price_period(
        CONTENT,
        CONTENT.plan("ebook-bundle"),
        Period(date(2026, 11, 5), date(2026, 11, 6)),
        tax=tax_for(CONTENT, {"country": "DE"}),
    )
    assert once.subtotal == D("29.99") and once.tax == D("5.70") and once.total == D("35.69")  # 5.6981 -> 5.70
    year = Period(date(2026, 1, 1), date(2027, 1, 1))
    creator = price_period(CONTENT, CONTENT.plan("creator-yearly"), year, usage={"downloads": MetricUsage(D(131))})
    # 119 + ceil((131 - 100) / 10) = 4 packs x 4.50 = 18
    assert creator.total == D("137.00")


def test_payments_catalog_scale_plan() -> None:
    usage = {"card_volume": MetricUsage(D("150000")), "twint_volume": MetricUsage(D(0), ())}
    bill = price_period(PAYMENTS, PAYMENTS.plan("scale"), NOV, usage=usage)
    by_id = {x.price_id: x.amount for x in bill.lines}
    # 2.5% of 100,000 = 2500 ; 1.9% of 50,000 = 950 -> 3450
    assert by_id["card_fees"] == D("3450.00")
    assert by_id["platform"] == D("99.00")
    assert "minimum_commitment" not in by_id
