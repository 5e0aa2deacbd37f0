"""The tables of product webhooks: the endpoints operators register, and one delivery row per
(event, endpoint) with its log (attempts, last answer, latency)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.base import Base


class EventEndpoint(Base):
    """A URL the product gave to receive engine events, signed with `secret` (and, while a
    rotation's grace lasts, also with `previous_secret`)."""

    __tablename__ = "event_webhook_endpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(200))
    previous_secret: Mapped[str | None] = mapped_column(String(200), default=None)
    previous_secret_until: Mapped[datetime | None] = mapped_column(default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EventDelivery(Base):
    """One event for one endpoint. `seq` orders a lane (endpoint, customer): a delivery is
    sent only when every earlier pending one of its lane is sent or dead."""

    __tablename__ = "event_webhook_deliveries"
    __table_args__ = (
        Index("ix_event_webhook_deliveries_lane", "endpoint_id", "customer_id", "status", "seq"),
        Index("ix_event_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[str] = mapped_column(String(64), default="")  # "" for events of no customer
    # The body exactly as signed and sent (FORMATS §3 envelope); a replay sends it again.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The engine's clock (a test clock moves the backoff); None: due at once.
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)  # wall clock lease
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_latency_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    replay_of: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    def log(self) -> dict[str, Any]:
        return {
            "id": self.id, "endpoint_id": self.endpoint_id, "event_id": self.event_id,
            "event_type": self.event_type, "customer_id": self.customer_id or None,
            "status": self.status, "attempts": self.attempts,
            "response_code": self.last_status_code, "latency_ms": self.last_latency_ms,
            "last_error": self.last_error, "replay_of": self.replay_of,
            "created_at": _iso(self.created_at), "last_attempt_at": _iso(self.last_attempt_at),
            "next_attempt_at": _iso(self.next_attempt_at) if self.status == "pending" else None,
            "finished_at": _iso(self.finished_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
