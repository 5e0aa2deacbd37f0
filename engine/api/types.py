"""Field types whose OpenAPI schema says exactly what validation accepts.

Numbers (README "Limits"): a quantity is a JSON integer or a decimal string, below 10^12 with
at most 12 decimal places (`engine.money.check_range`); JSON floats are refused, since they
are not exact. Seats are whole numbers. Times carry a zone and lie in 1970-2199.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from engine.money import MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS, check_range

_DIGITS = rf"[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?"
_POSITIVE = rf"^(?!0*(\.0*)?$){_DIGITS}$"
_NON_NEGATIVE = rf"^{_DIGITS}$"
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


def _quantity_schema(pattern: str, minimum: int, description: str, maximum: int = _MAX_INT) -> WithJsonSchema:
    return WithJsonSchema({
        "anyOf": [
            {"type": "integer", "minimum": minimum, "maximum": maximum},
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
# Seats: a subscription's quantity counts whole units, at most a billion (what sales stores,
# engine.sales.common.MAX_QUANTITY).
MAX_SEATS = 1_000_000_000
_SEATS = r"^([0-9]{1,9}|1000000000)$"
SeatCount = Annotated[
    Decimal,
    _decimal_of(_SEATS, "a whole number of seats from 0 to 1000000000"),
    Field(ge=0, le=MAX_SEATS),
    _quantity_schema(_SEATS, 0, "a whole number of units (seats), 0 to 1000000000", MAX_SEATS),
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


# --- ids and codes ----------------------------------------------------------------------------
# The same patterns as what they name (catalog.schema.json's identifier and coupon code, the
# customer id sales.customers accepts): a value outside them can never name anything.
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
PLAN_ID_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
COUPON_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

CustomerId = Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN, description="a customer id: letters, digits, _.:-")]
PlanId = Annotated[str, Field(pattern=PLAN_ID_PATTERN, description="a plan id of a published catalog")]
MetricId = Annotated[str, Field(pattern=PLAN_ID_PATTERN, description="a metric id of the plan's catalog")]
CouponCode = Annotated[str, Field(pattern=COUPON_CODE_PATTERN, description="a coupon code of the plan's catalog")]
# Any other stored object's id (subscription, invoice): unknown ones are a 404 naming the field.
ObjectId = Annotated[str, Field(min_length=1, max_length=200)]


@dataclass(frozen=True)
class OneOf:
    """Annotates a string drawn from a fixed set known at start-up (currencies, time zones):
    listed in the schema as an enum, and checked against the same set."""

    values: frozenset[str]
    what: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "enum": sorted(self.values)}

    def _check(self, value: str) -> str:
        if value not in self.values:
            raise ValueError(f"not {self.what}")
        return value


@dataclass(frozen=True)
class Matches:
    """Annotates a string that must match `pattern` (documented as the schema's pattern) and
    says `message` when it does not, instead of repeating the pattern to the user. The
    patterns given here mean the same in Python, ECMA 262 and pydantic's Rust dialect
    (ASCII classes and escapes); fullmatch keeps a trailing newline out, as ECMA's `$` does."""

    pattern: str
    message: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {**handler(schema), "pattern": self.pattern}

    def _check(self, value: str) -> str:
        if not re.fullmatch(self.pattern, value):
            raise ValueError(f"{value[:100]!r} is not {self.message}")
        return value


def keys_match_their_pattern(schema: dict[str, Any]) -> None:
    """`json_schema_extra` for a dict keyed by a constrained string: pydantic writes the key
    pattern as patternProperties, which leaves other keys unconstrained in JSON Schema;
    validation refuses them, so the schema says propertyNames."""
    ((pattern, values),) = schema.pop("patternProperties").items()
    schema["propertyNames"] = {**schema.get("propertyNames", {}), "pattern": pattern}
    schema["additionalProperties"] = values


def _json_integer(value: object) -> int:
    # JSON Schema's integer: 3 and 3.0, not "3" or true (pydantic's lax int takes both).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a whole number")
    return value


# Put after a Field's bounds (Annotated[int, Field(ge=0), JSON_INTEGER]), so that the schema
# keeps them as minimum and maximum.
JSON_INTEGER = BeforeValidator(_json_integer)


def _json_boolean(value: object) -> bool:
    # true or false; pydantic's lax bool also takes 0, 1, "yes" and "on".
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


JsonBool = Annotated[bool, BeforeValidator(_json_boolean)]
