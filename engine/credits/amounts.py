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
