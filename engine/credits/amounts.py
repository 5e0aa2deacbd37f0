"""Wallet amounts as text."""

from __future__ import annotations

from decimal import Decimal

from engine.money import KNOWN_CURRENCIES, quantum


def is_custom(unit: str) -> bool:
    """A custom unit (tokens) rather than a currency (upper-case ISO code)."""
    return not unit.isupper()


def amount_text(value: Decimal, unit: str) -> str:
    """A money amount at its currency's minor unit (PostgreSQL's NUMERIC returns more places);
    a custom unit's (tokens) as few places as it needs."""
    if unit in KNOWN_CURRENCIES:
        return str(value.quantize(quantum(unit)))
    return format(value.normalize(), "f")


def amount_value(value: Decimal, unit: str) -> Decimal:
    """A wallet figure read from NUMERIC, as the unit counts it: a currency's at its minor unit
    (PostgreSQL's NUMERIC(24,8) reads `104.10000000`; `104.10` is the same number), more places
    only when the figure has them (a grant finer than the minor unit is kept as declared, never
    rounded here); a custom unit's as read."""
    if unit in KNOWN_CURRENCIES:
        shown = value.quantize(quantum(unit))
        return shown if shown == value else value.normalize()
    return value
