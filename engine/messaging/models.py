"""Messaging's tables. Only engine.messaging writes them; others call its functions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.store import Base

# Notification.status values.
PENDING = "pending"  # waiting for delivery at next_attempt_at (also after a failed attempt)
SENDING = "sending"  # claimed by a delivery run until lease_until
SENT = "sent"
FAILED = "failed"  # permanent: bad template, no address, refused by the server
DEAD = "dead"  # dead-lettered: every attempt failed
SKIPPED = "skipped"  # opted out, or nowhere to send
DIGEST = "digest"  # waiting for its digest window to close (next_attempt_at)
DIGESTED = "digested"  # went out inside the digest notification `digest_id`

FINAL_STATUSES = frozenset({SENT, FAILED, DEAD, SKIPPED, DIGESTED})


class Notification(Base):
    """One message to one customer on one channel (and, for webhooks, one endpoint).

    (rule_id, event_id, channel, target) is unique: however often an event is redelivered,
    a rule records, and so sends, its message once.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("rule_id", "event_id", "channel", "target", name="uq_notification_dedup"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_customer", "customer_id", "created_at"),
        Index("ix_notifications_digest", "digest_key", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    template: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(50))
    rule_id: Mapped[str] = mapped_column(String(200), default="")
    event_id: Mapped[str] = mapped_column(String(200))
    # The webhook endpoint id; "" for the other channels.
    target: Mapped[str] = mapped_column(String(64), default="")
    recipient: Mapped[str | None] = mapped_column(String(2000), default=None)
    locale: Mapped[str] = mapped_column(String(20), default="en")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20))
    # The rendered message (Rendered.to_dict()), fixed when recorded: a retry resends it as is.
    content: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # A plain snapshot of the customer (name, locale, time zone) for digests.
    customer: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    digest_key: Mapped[str | None] = mapped_column(String(300), default=None)
    digest_id: Mapped[str | None] = mapped_column(String(64), default=None)
    provider_id: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class InAppMessage(Base):
    """A delivered in-app notification: the customer's feed."""

    __tablename__ = "in_app_messages"
    __table_args__ = (Index("ix_in_app_feed", "customer_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the notification's id
    customer_id: Mapped[str] = mapped_column(String(64))
    template: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    action_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None] = mapped_column(default=None)


class NotificationPreference(Base):
    """A customer's choices. Absent row = everything on, no quiet hours."""

    __tablename__ = "notification_preferences"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    opted_out_channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    opted_out_categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    quiet_start: Mapped[str | None] = mapped_column(String(5), default=None)  # "22:00"
    quiet_end: Mapped[str | None] = mapped_column(String(5), default=None)  # "07:00"
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    updated_at: Mapped[datetime]


class WebhookEndpoint(Base):
    """A URL a customer configured to receive its notifications as signed JSON."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
