"""Small helpers shared by the sales modules: ids, input coercion, time."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.clock import Clock
from engine.money import to_decimal
from engine.sales.errors import SalesError
from engine.store import new_event_id


def new_id(prefix: str) -> str:
    return new_event_id(prefix)


def whole_between(value: object, low: int, high: float = math.inf) -> bool:
    """An int (a bool is no count here) from `low` to `high`: a page, a page size, days."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def now_of(clock: Clock) -> datetime:
    now = clock.now()
    if now.tzinfo is None:
        raise SalesError("clock", "the clock returned a time without a zone")
    return now


MAX_QUANTITY = Decimal(1_000_000_000)
QUANTITY_PLACES = 6


def quantity_of(value: Any, field: str = "quantity") -> Decimal:
    """A subscription quantity: a whole or decimal number, never negative, never a float.
    Bounded (at most a billion, six decimal places): a number like 1e400 is no quantity
    anyone sells, and it cannot be priced, stored or printed."""
    if value is None:
        return Decimal(1)
    try:
        q = to_decimal(value, field)
    except ValueError as exc:
        raise SalesError(field, str(exc).split(": ", 1)[-1]) from None
    if q < 0:
        raise SalesError(field, f"{value} is negative; a quantity is 0 or more")
    if q > MAX_QUANTITY:
        raise SalesError(field, f"{value} is too large; a quantity is at most {MAX_QUANTITY:,}")
    if -int(q.as_tuple().exponent) > QUANTITY_PLACES and q != q.quantize(Decimal(1).scaleb(-QUANTITY_PLACES)):
        raise SalesError(field, f"{value} has more than {QUANTITY_PLACES} decimal places")
    return q


def money(value: Decimal, currency: str) -> str:
    """An amount as the decimal string the formats use, at the currency's minor unit
    (PostgreSQL's NUMERIC returns more places than the currency has)."""
    from engine.money import quantum

    return str(value.quantize(quantum(currency)))


def number(value: Decimal) -> str:
    from engine.pricing import fmt_quantity

    return fmt_quantity(value)
