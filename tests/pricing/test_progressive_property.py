"""Hypothesis: progressive billing over random usage sequences and thresholds. Whatever the
usage and however often a check repeats (a redelivered event), the interim invoices plus the
close (which deducts them) add up to the period's quote cent for cent, and no level is
invoiced twice (the levels invoiced rise)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal as D

from hypothesis import event, given, settings
from hypothesis import strategies as st

from engine.catalog.model import ProgressiveBilling
from engine.periods import Period
from engine.pricing import (
    ADVANCE,
    ARREARS,
    NOTHING,
    Discount,
    MetricUsage,
    Piece,
    TaxDecision,
    deduction,
    interim_invoice,
    level_reached,
    price_document,
    threshold,
    whole_period,
)
from tests.pricing.helpers import catalog_with

CATALOG = catalog_with("""
- {id: base, model: flat, amount: "9.99"}
- id: calls
  model: graduated
  metric: n
  tiers:
    - {up_to: 100, unit_amount: "0.0333", flat_amount: "1.00"}
    - {up_to: 1000, unit_amount: "0.0125"}
    - {up_to: null, unit_amount: "0.0071"}
- {id: volume, model: percentage, metric: m, rate: "1.7"}
""")
PERIOD = Period(date(2026, 3, 1), date(2026, 4, 1))

amounts = st.decimals(min_value=D("0.01"), max_value=D(60), places=2)
plans = st.tuples(st.lists(amounts, min_size=1, max_size=4, unique=True), st.none() | amounts)
steps = st.lists(st.tuples(st.integers(0, 400), st.decimals(min_value=D(0), max_value=D(500), places=2),
                           st.integers(1, 3)), min_size=1, max_size=12)


def _pieces(calls: int, volume: D, discounts: tuple[Discount, ...]) -> tuple[Piece, Piece]:
    usage = {"n": MetricUsage(D(calls)), "m": MetricUsage(volume, (volume,) if volume else ())}
    plan = CATALOG.plan("p")
    opening = Piece(CATALOG, plan, PERIOD, ADVANCE, discounts=discounts)
    closing = Piece(CATALOG, plan, PERIOD, ARREARS, usage=usage, discounts=discounts, minimum=True)
    return opening, closing


@settings(max_examples=150, deadline=None)
@given(plan=plans, usage=steps, percent=st.sampled_from([None, D(10), D("33.3")]),
       rate=st.sampled_from([D(0), D(19), D("7.7")]))
def test_interim_invoices_and_the_close_add_up_to_the_quote(
    plan: tuple[list[D], D | None], usage: list[tuple[int, D, int]], percent: D | None, rate: D
) -> None:
    pb = ProgressiveBilling(tuple(sorted(plan[0])), plan[1])
    discounts = () if percent is None else (Discount(percent=percent, source="coupon:X"),)
    tax = TaxDecision(rate, "DE" if rate else None)
    opening_doc = price_document([_pieces(0, D(0), discounts)[0]], tax)
    calls, volume, level, invoiced = 0, D(0), 0, NOTHING
    total = opening_doc.total
    levels: list[int] = []
    for more_calls, more_volume, checks in usage:
        calls, volume = calls + more_calls, volume + more_volume
        for _ in range(checks):  # the same state checked again: a redelivery, a second worker
            _, closing = _pieces(calls, volume, discounts)
            so_far = replace(closing, minimum=False, before=opening_doc.pieces[0].billed)
            interim = interim_invoice(so_far, pb, level, invoiced, tax)
            if interim is None:
                continue
            assert interim.level > level and interim.level == level_reached(pb, interim.accrued)
            assert interim.accrued >= (threshold(pb, interim.level) or D(0))
            levels.append(interim.level)
            event(f"interim invoices: {min(len(levels), 3)}+")
            level = interim.level
            invoiced = invoiced.plus(interim.document.pieces[0].billed)
            total += interim.document.total
    _, closing = _pieces(calls, volume, discounts)
    closing = replace(closing, before=opening_doc.pieces[0].billed)
    taken_back = deduction(closing, invoiced)
    close_doc = price_document([closing, *([taken_back] if taken_back else [])], tax)
    total += close_doc.total
    usage_map = dict(closing.usage)
    quote = whole_period(CATALOG, CATALOG.plan("p"), PERIOD, usage=usage_map, advance_discounts=discounts, tax=tax)
    assert total == quote.total
    assert levels == sorted(set(levels))  # no level twice
