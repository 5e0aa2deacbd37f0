"""What the books need of an invoice's lines, sent with invoice.finalized (`lines`): per line
its plan, price type, net amount, tax and service period. Payments journals revenue per plan
and price type from them and builds each line's revenue-recognition schedule.

Price types: `one_time` for a one-time purchase or a one-off charge (kind `fee`), `usage` for a
metered price billed in arrears (and a minimum commitment's true-up), `subscription` for the
rest (fees for a service period, proration credits and charges included).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from engine.sales.common import money

_FLAT = ("flat", "per_unit")


def price_type(row: dict[str, Any], reason: str) -> str:
    if reason == "once" or row["kind"] == "fee" or row["period_start"] is None:
        return "one_time"
    if row["kind"] == "minimum_commitment" or (row["timing"] == "in_arrears" and row["model"] not in _FLAT):
        return "usage"
    return "subscription"


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def book_lines(rows: Iterable[dict[str, Any]], plan: str | None, reason: str, currency: str) -> list[dict[str, Any]]:
    """The invoice lines (as `_line_rows` makes them) as invoice.finalized carries them."""
    return [
        {
            "position": r["position"],
            "plan": plan or "unassigned",
            "price_id": r["price_id"],
            "price_type": price_type(r, reason),
            "kind": r["kind"],
            # Net of the line's discount, before tax: what revenue is (the discount is not
            # booked apart per line, so the sum of lines is the invoice's subtotal - discount).
            "amount": money(Decimal(r["amount"]) - Decimal(r["discount"]), currency),
            "discount": money(Decimal(r["discount"]), currency),
            "tax": money(Decimal(r["tax"]), currency),
            "period_start": _day(r["period_start"]),
            "period_end": _day(r["period_end"]),
        }
        for r in rows
    ]
