"""What the books need of an invoice's lines, sent with invoice.finalized (`lines`): per line
its plan, price type, net amount, tax and service period. Payments journals revenue per plan
and price type from them and builds each line's revenue-recognition schedule.

Price types: `one_time` for a one-time purchase or a one-off charge (kind `fee`), `usage` for a
metered price billed in arrears (and a minimum commitment's true-up), `subscription` for the
rest (fees for a service period, proration credits and charges included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from engine.periods import iso_or_none
from engine.sales.common import money

_FLAT = ("flat", "per_unit")


def price_type(row: dict[str, Any], reason: str) -> str:
    if reason == "once" or row["kind"] == "fee" or row["period_start"] is None:
        return "one_time"
    if row["kind"] == "minimum_commitment" or (row["timing"] == "in_arrears" and row["model"] not in _FLAT):
        return "usage"
    return "subscription"


# A proration line keeps its whole period and says which days it gives back or charges in its
# name ("Unused Seats (23/28 days)", engine/pricing/document.py) and whose plan in its note
# ("credit:pro"). Those days end with the period (a change or cancellation runs to its end).
_DAYS = re.compile(r"\((\d+)/(\d+) days\)$")


def _served(row: dict[str, Any]) -> tuple[date | None, date | None]:
    start, end = row["period_start"], row["period_end"]
    found = _DAYS.search(row.get("name") or "") if row["kind"] == "proration" and end is not None else None
    if found is not None:
        start = end - timedelta(days=int(found.group(1)))
    return start, end


def _plan(row: dict[str, Any], plan: str | None) -> str:
    kind, _, of = (row.get("note") or "").partition(":")
    if row["kind"] == "proration" and kind in ("credit", "charge") and of:
        return of
    return plan or "unassigned"


def book_lines(rows: Iterable[dict[str, Any]], plan: str | None, reason: str, currency: str) -> list[dict[str, Any]]:
    """The invoice lines (as `_line_rows` makes them) as invoice.finalized carries them."""
    out = []
    for r in rows:
        start, end = _served(r)
        out.append({
            "position": r["position"],
            "plan": _plan(r, plan),
            "price_id": r["price_id"],
            "price_type": price_type(r, reason),
            "kind": r["kind"],
            # Net of the line's discount, before tax: what is earned. The journal books the
            # gross (amount + discount) as revenue and the discount on its own account.
            "amount": money(Decimal(r["amount"]) - Decimal(r["discount"]), currency),
            "discount": money(Decimal(r["discount"]), currency),
            "tax": money(Decimal(r["tax"]), currency),
            "period_start": iso_or_none(start),
            "period_end": iso_or_none(end),
        })
    return out
