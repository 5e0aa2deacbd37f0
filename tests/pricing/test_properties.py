"""Hypothesis properties of the pricing engine."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog.model import Price, Tier
from engine.periods import Period
from engine.pricing import MetricUsage, charge, price_period, prorate_change
from tests.pricing.helpers import catalog_with

money = st.decimals(min_value=D(0), max_value=D(1000), places=4)
quantities = st.decimals(min_value=D(0), max_value=D(10**6), places=2)


@given(unit=money, flat=money, q=quantities)
def test_one_tier_graduated_equals_the_same_volume_price(unit: D, flat: D, q: D) -> None:
    tiers = (Tier(None, unit, flat),)
    graduated = Price("g", "graduated", "in_arrears", tiers=tiers)
    volume = Price("v", "volume", "in_arrears", tiers=tiers)
    assert charge(graduated, q).amount == charge(volume, q).amount


tier_lists = st.lists(st.tuples(st.integers(min_value=1, max_value=1000), money, money), min_size=1, max_size=5).map(
    lambda rows: tuple(
        Tier(None if i == len(rows) - 1 else D(sum(r[0] for r in rows[: i + 1])), unit, flat)
        for i, (_, unit, flat) in enumerate(rows)
    )
)


@given(tiers=tier_lists, a=quantities, b=quantities)
def test_graduated_totals_never_decrease_as_quantity_grows(tiers: tuple[Tier, ...], a: D, b: D) -> None:
    price = Price("g", "graduated", "in_arrears", tiers=tiers)
    lo, hi = sorted((a, b))
    assert charge(price, lo).amount <= charge(price, hi).amount


@given(tiers=tier_lists, q=quantities)
def test_graduated_tier_quantities_add_up_to_q(tiers: tuple[Tier, ...], q: D) -> None:
    result = charge(Price("g", "graduated", "in_arrears", tiers=tiers), q)
    assert sum(t.quantity for t in result.tiers) == q
    assert sum(t.amount for t in result.tiers) == result.amount


SAAS_LIKE = catalog_with(
    """
- {id: base, model: flat, amount: "49.00"}
- {id: seats, model: per_unit, unit_amount: "10.00"}
- id: calls
  model: graduated
  metric: n
  tiers:
    - {up_to: 10000, unit_amount: "0"}
    - {up_to: 100000, unit_amount: "0.002"}
    - {up_to: null, unit_amount: "0.001", flat_amount: "5.00"}
- {id: pct, model: percentage, metric: m, rate: 2.9, fixed_amount: "0.30"}
""",
    extra="""
taxes: {CH: 8.1}
""",
)


@settings(max_examples=200)
@given(
    seats=st.integers(min_value=0, max_value=500),
    calls=st.integers(min_value=0, max_value=10**7),
    volume=st.lists(st.decimals(min_value=D("0.01"), max_value=D(5000), places=2), max_size=20),
    percent=st.decimals(min_value=D(0), max_value=D(100), places=2),
)
def test_quote_total_is_the_sum_of_its_lines(seats: int, calls: int, volume: list[D], percent: D) -> None:
    from engine.pricing import Discount, TaxDecision

    bill = price_period(
        SAAS_LIKE,
        SAAS_LIKE.plan("p"),
        Period(date(2026, 11, 1), date(2026, 12, 1)),
        quantity=D(seats),
        usage={"n": MetricUsage(D(calls)), "m": MetricUsage(sum(volume, D(0)), tuple(volume))},
        discounts=[Discount(percent=percent)],
        tax=TaxDecision(D("8.1"), "CH"),
    )
    q = D("0.01")
    assert all(line.amount == line.amount.quantize(q) for line in bill.lines)
    assert bill.subtotal == sum(line.amount for line in bill.lines)
    assert bill.total == bill.subtotal - bill.discount + bill.tax
    assert D(0) <= bill.discount <= bill.subtotal


@given(
    old_q=st.integers(min_value=0, max_value=100),
    new_q=st.integers(min_value=0, max_value=100),
    start=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 1)),
    days=st.integers(min_value=1, max_value=366),
)
def test_proration_at_the_period_start_makes_the_new_price(old_q: int, new_q: int, start: date, days: int) -> None:
    period = Period(start, start + timedelta(days=days))
    plan = SAAS_LIKE.plan("p")
    old_bill = price_period(SAAS_LIKE, plan, period, quantity=D(old_q), timings={"in_advance"})
    new_bill = price_period(SAAS_LIKE, plan, period, quantity=D(new_q), timings={"in_advance"})
    lines = prorate_change(
        SAAS_LIKE, period, period.start, old_plan=plan, old_quantity=D(old_q), new_plan=plan, new_quantity=D(new_q)
    )
    credit = sum((x.amount for x in lines if x.amount < 0), D(0))
    new_charge = sum((x.amount for x in lines if x.amount > 0), D(0))
    # Paid up front, credited back in full, charged the new price in full.
    assert old_bill.total + credit == 0
    assert old_bill.total + credit + new_charge == new_bill.total
