"""The compiled amount functions (the hot path) agree with the reference `charge()` exactly."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog.model import Price, Tier
from engine.pricing import charge
from engine.pricing.charges import amount_fn

money = st.decimals(min_value=D(0), max_value=D(1000), places=3)
quantities = st.decimals(min_value=D(0), max_value=D(10**6), places=2)


@st.composite
def tiers(draw: st.DrawFn, percent: bool = False) -> tuple[Tier, ...]:
    widths = draw(st.lists(st.integers(min_value=1, max_value=5000), min_size=0, max_size=4))
    bounds: list[D | None] = [D(sum(widths[: i + 1])) for i in range(len(widths))]
    bounds.append(None)
    return tuple(
        Tier(
            b,
            D(0) if percent else draw(money),
            draw(money),
            draw(st.decimals(min_value=D(0), max_value=D(100), places=2)) if percent else D(0),
        )
        for b in bounds
    )


@st.composite
def prices(draw: st.DrawFn) -> Price:
    model = draw(
        st.sampled_from(["flat", "per_unit", "graduated", "volume", "package", "graduated_percentage", "percentage"])
    )
    transform = (
        draw(st.sampled_from([None, 10, 1000])) if model in ("per_unit", "graduated", "volume", "package") else None
    )
    return Price(
        "p",
        model,
        "in_arrears",
        amount=draw(money),
        unit_amount=draw(money),
        tiers=draw(tiers(percent=model == "graduated_percentage")),
        package_size=draw(st.integers(min_value=1, max_value=500)),
        free_units=draw(st.integers(min_value=0, max_value=50)),
        free_units_given=draw(st.booleans()),
        rate=draw(st.decimals(min_value=D(0), max_value=D(100), places=2)),
        fixed_amount=draw(money),
        free_amount=draw(st.none() | money),
        min_per_transaction=draw(st.none() | money),
        max_per_transaction=draw(st.none() | money),
        divide_by=transform,
        round=draw(st.sampled_from(["up", "down"])),
    )


@settings(max_examples=400)
@given(
    price=prices(),
    q=quantities,
    tx=st.none() | st.lists(st.decimals(min_value=D(0), max_value=D(5000), places=2), max_size=8).map(tuple),
)
def test_compiled_amount_equals_reference_charge(price: Price, q: D, tx: tuple[D, ...] | None) -> None:
    assert amount_fn(price)(q, tx) == charge(price, q, tx).amount
