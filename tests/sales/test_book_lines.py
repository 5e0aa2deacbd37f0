"""What invoice.finalized tells the books of each line: price type, net amount, and for a
proration line the days it charges or gives back, on the plan it belongs to."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from engine.sales.book_lines import book_lines


def row(**over: Any) -> dict[str, Any]:
    base = {"position": 1, "price_id": "base", "name": "Pro base fee", "model": "flat", "timing": "in_advance",
            "kind": "charge", "amount": Decimal("49.00"), "discount": Decimal("4.90"), "tax": Decimal("8.38"),
            "period_start": date(2026, 2, 16), "period_end": date(2026, 3, 16), "note": ""}
    return {**base, **over}


def test_price_types_and_net_amounts() -> None:
    lines = book_lines([row(), row(price_id="calls", model="graduated", timing="in_arrears", discount=Decimal(0)),
                        row(kind="fee", period_start=None, period_end=None)], "pro", "cycle", "USD")
    assert [(x["price_type"], x["amount"], x["discount"]) for x in lines] == [
        ("subscription", "44.10", "4.90"), ("usage", "49.00", "0.00"), ("one_time", "44.10", "4.90")]
    assert book_lines([row()], "pro", "once", "USD")[0]["price_type"] == "one_time"


def test_a_proration_line_serves_its_days_up_to_the_period_end_on_its_own_plan() -> None:
    [credit] = book_lines([row(kind="proration", name="Unused Pro base fee (23/28 days)", note="credit:starter",
                               amount=Decimal("-40.25"), discount=Decimal(0))], "pro", "change", "USD")
    assert (credit["plan"], credit["period_start"], credit["period_end"]) == ("starter", "2026-02-21", "2026-03-16")
