"""The answers, typed. Money is Decimal (the engine sends decimal strings); fields the engine
adds later are kept (`extra="allow"`) so an older client still reads a newer engine."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Event:
    """A usage or product event (FORMATS §3). The id is made once, here, so every retry of the
    batch carries the same id and the engine counts a replay as a duplicate, never twice."""

    type: str
    customer_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: str = field(default_factory=new_event_id)

    def as_json(self) -> dict[str, Any]:
        if self.time.tzinfo is None:
            raise ValueError(f"event {self.id}: time needs a zone (e.g. datetime.now(UTC))")
        return {"id": self.id, "type": self.type, "customer_id": self.customer_id,
                "time": self.time.isoformat(), "properties": self.properties}


class IngestReport(_Answer):
    received: int = 0
    accepted: int = 0
    duplicates: int = 0

    def __add__(self, other: IngestReport) -> IngestReport:
        return IngestReport(received=self.received + other.received, accepted=self.accepted + other.accepted,
                            duplicates=self.duplicates + other.duplicates)


Source = Literal["engine", "cache", "stale", "policy"]


class AccessDecision(_Answer):
    allowed: bool
    feature: str
    reason: str
    limit: int | Decimal | str | None = None
    used: int | Decimal | str | None = None
    remaining: int | Decimal | str | None = None
    plan: str | None = None
    rules: list[str] = []
    offer: dict[str, Any] | None = None
    decision_id: str | None = None
    # Where this answer came from: the engine now, the local cache, a cached answer kept past
    # its time because the engine is unreachable, or the feature's declared policy.
    source: Source = "engine"


class QuoteLine(_Answer):
    amount: Decimal
    price_id: str | None = None
    model: str | None = None
    quantity: Decimal | None = None


class Quote(_Answer):
    plan: str | None = None
    currency: str
    lines: list[QuoteLine] = []
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal


class Customer(_Answer):
    id: str
    email: str
    name: str
    country: str | None = None
    currency: str | None = None
    subscriptions: list[dict[str, Any]] = []


class Subscription(_Answer):
    id: str
    customer_id: str
    plan: str
    status: str
    quantity: Decimal | int | None = None
    current_period: dict[str, str] | None = None


class PaymentMethod(_Answer):
    id: str
    customer_id: str
    type: str
    provider: str | None = None
    last4: str | None = None
    default: bool = False


class Invoice(_Answer):
    id: str
    customer_id: str
    status: str
    currency: str
    total: Decimal
    amount_due: Decimal | None = None
    amount_paid: Decimal | None = None
    number: str | int | None = None
    lines: list[dict[str, Any]] = []
