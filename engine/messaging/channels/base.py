"""What every channel shares: the interface (`Channel`: `send` delivers, or raises `TransientError`
to be tried again with backoff or `PermanentError`), the message it sends (`Outgoing`) and its
retry policy. Moved from engine/messaging/channels.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from engine.messaging.templates import Rendered


class DeliveryError(Exception):
    pass


class TransientError(DeliveryError):
    """The channel may accept the message later: retry with backoff."""


class PermanentError(DeliveryError):
    """Retrying cannot help (bad address, refused content, removed endpoint)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base: timedelta = timedelta(minutes=1)
    factor: float = 2.0
    cap: timedelta = timedelta(hours=6)

    def delay(self, attempts: int) -> timedelta:
        """Wait after the `attempts`-th failed attempt: base, base*factor, ... up to cap."""
        seconds = self.base.total_seconds() * self.factor ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.cap.total_seconds()))


@dataclass(frozen=True)
class Outgoing:
    """What a channel needs to send one message."""

    notification_id: str
    customer_id: str
    channel: str
    template: str
    category: str
    recipient: str | None
    rendered: Rendered
    created_at: datetime
    attempt: int
    secret: str | None = None  # webhooks: the endpoint's signing secret


class Channel(Protocol):
    name: str
    retry: RetryPolicy
    # True: send() writes to the database and must run inside the transaction that marks
    # the notification sent (exactly once). False: send() does I/O outside any transaction.
    transactional: bool

    def send(self, message: Outgoing, session: Session | None = None) -> str | None: ...

    def send_many(self, messages: Sequence[Outgoing], session: Session) -> None:
        """A transactional channel's messages of one delivery group, written in `session` (the
        transaction that marks them sent). One by one unless the channel does better."""
        for message in messages:
            self.send(message, session)

    def close(self) -> None: ...
