"""The event envelope (FORMATS.md §3) and its validation.

Every message on the bus is one JSON object:
`{"id", "type", "customer_id", "time", "properties"}`. A body that is not JSON, or lacks
`id`, `type` or `customer_id`, is a poison message: it goes to the dead-letter queue with the
reason instead of being retried.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_TYPE_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"


class PoisonMessage(ValueError):
    """A message no handler could ever apply: retrying it cannot help."""


class Envelope(BaseModel):
    """One event. `id` is the idempotency key; `time` always carries a zone."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=100, pattern=_TYPE_PATTERN)
    # Required key; null is allowed for engine events that concern no customer.
    customer_id: str | None = Field(max_length=64)
    time: datetime
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp has no timezone (add Z or +00:00)")
        return value.astimezone(UTC)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "customer_id": self.customer_id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "properties": self.properties,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str).encode()


def envelope_from_dict(data: Any) -> Envelope:
    """Validate a decoded envelope; raises PoisonMessage naming every offending field."""
    if not isinstance(data, dict):
        raise PoisonMessage(f"envelope is a JSON {type(data).__name__}, not an object")
    missing = [k for k in ("id", "type", "customer_id") if k not in data]
    if missing:
        raise PoisonMessage("missing " + ", ".join(missing))
    try:
        return Envelope.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'envelope'}: {err['msg']}" for err in exc.errors()
        )
        raise PoisonMessage(problems) from None


def parse_envelope(body: bytes | str) -> Envelope:
    """Decode and validate a message body; raises PoisonMessage with the reason."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage(f"invalid JSON: {exc}") from None
    return envelope_from_dict(data)
