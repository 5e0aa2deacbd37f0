"""How the business pages write money, dates and counts: thousands separators, two decimals,
month names; never a raw ISO string or a bare Decimal."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CHF": "CHF "}


def money(v: Decimal | str | None, currency: str = "") -> str:
    if v is None or v == "":
        return "—"
    amount = Decimal(str(v))
    sign = "-" if amount < 0 else ""
    symbol = SYMBOLS.get(currency)
    text = f"{abs(amount):,.2f}"
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}".strip()


def day(v: date | datetime | str | None) -> str:
    """Mar 1, 2026 (a time in UTC when there is one: Mar 1, 2026 14:05 UTC)."""
    if v is None or v == "":
        return "—"
    if isinstance(v, str):
        v = datetime.fromisoformat(v.replace("Z", "+00:00")) if "T" in v else date.fromisoformat(v)
    if isinstance(v, datetime):
        return f"{v:%b} {v.day}, {v.year} {v:%H:%M} UTC"
    return f"{v:%b} {v.day}, {v.year}"


def month(v: date) -> str:
    return f"{v:%b %Y}"


def count(n: int) -> str:
    return f"{n:,}"


def number(v: Any) -> str:
    """A quantity: 12, 1,500, 2.5 (no trailing zeros)."""
    if v is None or v == "":
        return "—"
    d = Decimal(str(v))
    d = d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()
    return f"{d:,}"


def percent(v: Decimal | None) -> str:
    return "—" if v is None else f"{v:,.1f} %"
