"""Worked examples for every price model; every expected amount is computed by hand here."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from engine.periods import Period
from engine.pricing import MetricUsage, charge, price_period
from tests.pricing.helpers import catalog_with

NOV = Period(date(2026, 11, 1), date(2026, 12, 1))

GRADUATED = """
- id: g
  model: graduated
  metric: m
  tiers:
    - {up_to: 100, unit_amount: "1.00", flat_amount: "10.00"}
    - {up_to: 200, unit_amount: "0.50", flat_amount: "5.00"}
    - {up_to: null, unit_amount: "0.10"}
"""


def amount(catalog, q, metric="m", quantity=D(1), tx=None):  # type: ignore[no-untyped-def]
    bill = price_period(catalog, catalog.plan("p"), NOV, quantity=quantity, usage={metric: MetricUsage(D(q), tx)})
    return bill.lines[0]


class TestGraduated:
    cat = catalog_with(GRADUATED)

    def test_zero_usage_pays_first_tier_flat_fee(self) -> None:
        line = amount(self.cat, 0)
        assert line.amount == D("10.00")
        assert [(t.tier, t.quantity) for t in line.tiers] == [(1, 0)]

    def test_exactly_at_first_bound_stays_in_first_tier(self) -> None:
        # 100 x 1.00 + 10 flat; the bound is inclusive, tier 2 is not reached.
        line = amount(self.cat, 100)
        assert line.amount == D("110.00")
        assert len(line.tiers) == 1

    def test_one_past_the_bound_reaches_the_second_tier(self) -> None:
        # 100 + 10 (tier 1) + 1 x 0.50 + 5 flat (tier 2) = 115.50
        line = amount(self.cat, 101)
        assert line.amount == D("115.50")
        assert [(t.tier, t.quantity, t.amount) for t in line.tiers] == [(1, D(100), D("110.00")), (2, D(1), D("5.50"))]

    def test_quantity_in_the_open_tier(self) -> None:
        # tier1 110 + tier2 (100 x 0.5 + 5 = 55) + tier3 (50 x 0.10 = 5) = 170
        line = amount(self.cat, 250)
        assert line.amount == D("170.00")
        assert [t.quantity for t in line.tiers] == [D(100), D(100), D(50)]

    def test_fractional_quantity_rounds_once_per_line(self) -> None:
        cat = catalog_with("""
- id: g
  model: graduated
  metric: m
  tiers:
    - {up_to: null, unit_amount: "0.003"}
""")
        # 1001 x 0.003 = 3.003 -> 3.00 ; 1005 x 0.003 = 3.015 -> 3.02 (half_up)
        assert amount(cat, 1001).amount == D("3.00")
        assert amount(cat, 1005).amount == D("3.02")


class TestVolume:
    cat = catalog_with("""
- id: v
  model: volume
  metric: m
  tiers:
    - {up_to: 10, unit_amount: "5.00", flat_amount: "2.00"}
    - {up_to: 50, unit_amount: "4.00"}
    - {up_to: null, unit_amount: "3.00", flat_amount: "1.00"}
""")

    def test_zero_is_first_tier_with_its_flat_fee(self) -> None:
        assert amount(self.cat, 0).amount == D("2.00")

    def test_bound_is_inclusive(self) -> None:
        assert amount(self.cat, 10).amount == D("52.00")  # 10 x 5 + 2
        assert amount(self.cat, 11).amount == D("44.00")  # 11 x 4, all units at tier 2
        assert amount(self.cat, 50).amount == D("200.00")

    def test_open_tier_prices_all_units(self) -> None:
        line = amount(self.cat, 51)
        assert line.amount == D("154.00")  # 51 x 3 + 1
        assert [(t.tier, t.quantity) for t in line.tiers] == [(3, D(51))]


class TestPackage:
    cat = catalog_with("""
- {id: pk, model: package, metric: m, package_size: 100, amount: "7.00", free_units: 50}
""")

    @pytest.mark.parametrize(
        ("q", "expected"), [(0, "0.00"), (50, "0.00"), (51, "7.00"), (150, "7.00"), (151, "14.00"), (1050, "70.00")]
    )
    def test_started_packages_after_free_units(self, q: int, expected: str) -> None:
        assert amount(self.cat, q).amount == D(expected)


class TestPerUnitAndFlat:
    def test_flat_ignores_quantity_and_per_unit_multiplies_seats(self) -> None:
        cat = catalog_with("""
- {id: base, model: flat, amount: "49.00"}
- {id: seats, model: per_unit, unit_amount: "10.00"}
""")
        bill = price_period(cat, cat.plan("p"), NOV, quantity=D(7))
        assert [(x.price_id, x.amount, x.timing) for x in bill.lines] == [
            ("base", D("49.00"), "in_advance"),
            ("seats", D("70.00"), "in_advance"),
        ]
        assert bill.total == D("119.00")


class TestTransform:
    cat = catalog_with("""
- {id: up, model: per_unit, metric: m, unit_amount: "2.00", transform: {divide_by: 1000, round: up}}
""")

    def test_round_up_bills_a_started_unit(self) -> None:
        assert amount(self.cat, 1001).quantity == D(2)
        assert amount(self.cat, 1001).amount == D("4.00")
        assert amount(self.cat, 1000).amount == D("2.00")

    def test_round_down(self) -> None:
        cat = catalog_with("""
- {id: dn, model: per_unit, metric: m, unit_amount: "2.00", transform: {divide_by: 1000, round: down}}
""")
        assert amount(cat, 1999).amount == D("2.00")


class TestGraduatedPercentage:
    cat = catalog_with("""
- id: gp
  model: graduated_percentage
  metric: m
  tiers:
    - {up_to: 1000, rate: 2, flat_amount: "1.00"}
    - {up_to: null, rate: 1, flat_amount: "3.00"}
""")

    def test_zero_volume_pays_the_first_flat(self) -> None:
        assert amount(self.cat, 0).amount == D("1.00")

    def test_each_tier_takes_its_rate_of_its_slice(self) -> None:
        # 2% of 1000 = 20 + 1 ; 1% of 500 = 5 + 3  -> 29
        assert amount(self.cat, 1500).amount == D("29.00")
        assert amount(self.cat, 1000).amount == D("21.00")


class TestPercentage:
    def test_rate_fixed_fee_and_clamps_per_transaction(self) -> None:
        cat = catalog_with("""
- {id: pc, model: percentage, metric: m, rate: 2.5, fixed_amount: "0.30", min_per_transaction: "0.50", max_per_transaction: "10.00"}
""")
        # 10.00 -> 0.25 + 0.30 = 0.55 ; 4.00 -> 0.10 + 0.30 = 0.40 -> min 0.50 ;
        # 1000 -> 25 + 0.30 -> max 10.00 ; total 11.05
        line = amount(cat, 1014, tx=(D("10.00"), D("4.00"), D("1000")))
        assert line.amount == D("11.05")
        assert line.quantity == D(3)

    def test_free_units_and_free_amount_both_must_last(self) -> None:
        cat = catalog_with("""
- {id: pc, model: percentage, metric: m, rate: 10, fixed_amount: "1.00", free_units: 3, free_amount: "100.00"}
""")
        # tx1 40 free (running 40), tx2 50 free (90), tx3 30 crosses 100: pays 10% of 20 + 1 = 3,
        # tx4 10 pays 1 + 1 = 2 -> 5.00
        assert amount(cat, 130, tx=(D(40), D(50), D(30), D(10))).amount == D("5.00")
        # Three small ones are free by count and amount; the fourth is past free_units: 0.5 + 1
        assert amount(cat, 20, tx=(D(5), D(5), D(5), D(5))).amount == D("1.50")

    def test_only_free_units_given_sets_no_amount_limit(self) -> None:
        cat = catalog_with("""
- {id: pc, model: percentage, metric: m, rate: 10, free_units: 1}
""")
        # first (10,000) free whatever its size; second 100 -> 10.00
        assert amount(cat, 10100, tx=(D(10000), D(100))).amount == D("10.00")

    def test_only_free_amount_given(self) -> None:
        cat = catalog_with("""
- {id: pc, model: percentage, metric: m, rate: 10, free_amount: "15"}
""")
        # 10 free, 10 crosses at 20: 5 above -> 0.50, then 10 -> 1.00
        assert amount(cat, 30, tx=(D(10), D(10), D(10))).amount == D("1.50")

    def test_no_allowance_means_nothing_free(self) -> None:
        cat = catalog_with("""
- {id: pc, model: percentage, metric: m, rate: 1}
""")
        assert amount(cat, 200, tx=(D(100), D(100))).amount == D("2.00")

    def test_aggregate_without_events_is_one_transaction(self) -> None:
        cat = catalog_with("""
- {id: pc, model: percentage, metric: m, rate: 2, fixed_amount: "0.30", max_per_transaction: "5.00"}
""")
        # one transaction of 1000: 20.30 clamped to 5.00
        assert amount(cat, 1000).amount == D("5.00")


class TestCurrencies:
    def test_jpy_has_no_minor_unit(self) -> None:
        cat = catalog_with('- {id: u, model: per_unit, metric: m, unit_amount: "0.5"}', currency="JPY")
        # 3 x 0.5 = 1.5 -> 2 (half_up); amounts print without decimals
        line = amount(cat, 3)
        assert line.amount == D("2")
        assert str(line.amount) == "2"

    def test_kwd_has_three_decimals(self) -> None:
        cat = catalog_with('- {id: u, model: per_unit, metric: m, unit_amount: "0.0125"}', currency="KWD")
        # 7 x 0.0125 = 0.0875 -> 0.088 (half_up)
        assert str(amount(cat, 7).amount) == "0.088"

    def test_half_even_vs_half_up(self) -> None:
        prices = '- {id: u, model: per_unit, metric: m, unit_amount: "0.005"}'
        up = catalog_with(prices, rounding="half_up")
        even = catalog_with(prices, rounding="half_even")
        # 5 x 0.005 = 0.025: half_up -> 0.03, half_even -> 0.02 ; 7 x = 0.035 -> 0.04 both
        assert amount(up, 5).amount == D("0.03")
        assert amount(even, 5).amount == D("0.02")
        assert amount(up, 7).amount == amount(even, 7).amount == D("0.04")


def test_negative_quantity_is_refused() -> None:
    cat = catalog_with('- {id: u, model: per_unit, unit_amount: "1"}')
    with pytest.raises(ValueError, match="negative"):
        price_period(cat, cat.plan("p"), NOV, quantity=D(-1))
    with pytest.raises(ValueError, match="negative"):
        charge(cat.plan("p").prices[0], D(-2))
