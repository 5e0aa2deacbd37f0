"""Field types whose OpenAPI schema says exactly what validation accepts.

Numbers (README "Limits"): a quantity is a JSON integer or a decimal string, below 10^12 with
at most 12 decimal places (`engine.money.check_range`); JSON floats are refused, since they
are not exact. Seats are whole numbers. Times carry a zone and lie in 1970-2199.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, WithJsonSchema

from engine.money import MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS, check_range

_DIGITS = rf"[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?"
_POSITIVE = rf"^(?!0*(\.0*)?$){_DIGITS}$"
_NON_NEGATIVE = rf"^{_DIGITS}$"
_WHOLE = rf"^[0-9]{{1,{MAX_INTEGER_DIGITS}}}$"
_MAX_INT = 10**MAX_INTEGER_DIGITS - 1
_TEXT_LENGTH = MAX_INTEGER_DIGITS + 1 + MAX_FRACTION_DIGITS


def _decimal_of(pattern: str, what: str) -> Any:
    compiled = re.compile(pattern)

    def parse(value: object) -> Decimal:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON Schema's integer: 3.0 is one (RFC 8259 numbers)
        if isinstance(value, int) and not isinstance(value, bool) and -_MAX_INT <= value <= _MAX_INT:
            return Decimal(value)
        if isinstance(value, str) and len(value) <= _TEXT_LENGTH and compiled.match(value):
            return check_range(Decimal(value))
        raise ValueError(f"{what}, as an integer or a string matching {pattern}")

    return BeforeValidator(parse)


def _quantity_schema(pattern: str, minimum: int, description: str) -> WithJsonSchema:
    return WithJsonSchema({
        "anyOf": [
            {"type": "integer", "minimum": minimum, "maximum": _MAX_INT},
            {"type": "string", "pattern": pattern, "maxLength": _TEXT_LENGTH},
        ],
        "description": description,
    })


PositiveQuantity = Annotated[
    Decimal,
    _decimal_of(_POSITIVE, "a quantity above zero, below 10^12, at most 12 decimal places"),
    Field(gt=0),
    _quantity_schema(_POSITIVE, 1, "a quantity above zero (below 10^12, at most 12 decimal places)"),
]
NonNegativeQuantity = Annotated[
    Decimal,
    _decimal_of(_NON_NEGATIVE, "a quantity of zero or more, below 10^12, at most 12 decimal places"),
    Field(ge=0),
    _quantity_schema(_NON_NEGATIVE, 0, "a quantity of zero or more (below 10^12, at most 12 decimal places)"),
]
# Seats: a subscription's quantity counts whole units.
SeatCount = Annotated[
    Decimal,
    _decimal_of(_WHOLE, "a whole number of seats from 0 to 999999999999"),
    Field(ge=0),
    _quantity_schema(_WHOLE, 0, "a whole number of units (seats), 0 to 999999999999"),
]

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]")


def _text_only(value: object) -> object:
    # pydantic would take a number as seconds since 1970: the contract says ISO 8601 text.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("an ISO 8601 time with a zone, e.g. 2026-11-23T10:00:00Z")
    return value


def in_time_range(value: datetime) -> datetime:
    # The year as written (the schema's pattern reads the text): 1970-01-01T00:00+14:00 is in.
    if not EARLIEST.year <= value.year < LATEST.year:
        raise ValueError("out of range: a time from 1970 to 2199")
    return value


def finite_json(value: Any, depth: int = 0) -> Any:
    """A JSON value with no NaN or Infinity and nested at most 8 deep (event properties)."""
    if depth > 8:
        raise ValueError("nested more than 8 levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON numbers")
    if isinstance(value, dict):
        for item in value.values():
            finite_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            finite_json(item, depth + 1)
    return value


# A time from outside: ISO 8601 text with a zone, from 1970 to 2199 (the schema's pattern says
# both; RFC 3339 date-time needs the zone).
ZONED_PATTERN = r"^(19[7-9][0-9]|2[01][0-9]{2})-[0-9]{2}-[0-9]{2}T.*(Z|z|[+-][0-9]{2}:[0-9]{2})$"
ZonedTime = Annotated[
    AwareDatetime,
    BeforeValidator(_text_only),
    AfterValidator(in_time_range),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": ZONED_PATTERN,
                    "description": "ISO 8601 with a zone, from 1970 to 2199"}),
]
