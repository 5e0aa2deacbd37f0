"""Field types whose OpenAPI schema says exactly what validation accepts."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, WithJsonSchema

_POSITIVE = r"^(?!0*(\.0*)?$)[0-9]+(\.[0-9]+)?$"
_NON_NEGATIVE = r"^[0-9]+(\.[0-9]+)?$"

PositiveQuantity = Annotated[
    Decimal,
    Field(gt=0, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": _POSITIVE, "maxLength": 40}],
            "description": "a quantity above zero, as an integer or a decimal string",
        }
    ),
]
NonNegativeQuantity = Annotated[
    Decimal,
    Field(ge=0, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": _NON_NEGATIVE, "maxLength": 40}],
            "description": "a quantity of zero or more, as an integer or a decimal string",
        }
    ),
]
