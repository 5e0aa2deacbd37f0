"""The webhook channel: signed HTTP POSTs to public addresses, the signature a receiver checks and
the envelope it receives. Moved from engine/messaging/channels.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, timedelta

import httpx
from sqlalchemy.orm import Session

from engine.messaging.channels.base import Channel, Outgoing, PermanentError, RetryPolicy, TransientError
from engine.public_urls import HostUnresolved, UrlRefused, check_public_url

SIGNATURE_HEADER = "Billing-Signature"


ID_HEADER = "Billing-Webhook-Id"


TIMESTAMP_HEADER = "Billing-Webhook-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: float = 300
) -> bool:
    """What a receiver does: recompute the HMAC and refuse stale timestamps (replays)."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (ValueError, KeyError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def webhook_body(message: Outgoing) -> bytes:
    envelope = {
        "id": message.notification_id,
        "type": message.template,
        "category": message.category,
        "customer_id": message.customer_id,
        "created": message.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": message.rendered.payload or {},
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def check_webhook_url(
    url: str, *, allow_private: bool = False, resolve: Callable[[str], Iterable[str]] | None = None
) -> None:
    """Only http(s); and unless allowed, no loopback/private/link-local target (SSRF): the
    shared check (engine/public_urls.py), its refusals as this channel's delivery errors."""
    try:
        check_public_url(url, allow_private=allow_private, resolve=resolve)
    except HostUnresolved as exc:
        raise TransientError(str(exc)) from exc.__cause__
    except UrlRefused as exc:
        raise PermanentError(str(exc)) from None


class WebhookChannel(Channel):
    name = "webhook"
    transactional = False

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        allow_private: bool = False,
        wall_clock: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy(max_attempts=8, base=timedelta(minutes=1), cap=timedelta(hours=12))
        self.allow_private = allow_private
        self.wall_clock = wall_clock
        self.timeout = timeout
        self._client = client or httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "billing-engine-webhooks"}
        )

    def send(self, message: Outgoing, session: Session | None = None) -> str | None:
        url = message.recipient or ""
        if not message.secret:
            raise PermanentError("the webhook endpoint is gone or disabled")
        check_webhook_url(url, allow_private=self.allow_private)
        body = webhook_body(message)
        timestamp = int(self.wall_clock())
        headers = {
            "Content-Type": "application/json",
            ID_HEADER: message.notification_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(message.secret, timestamp, body),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientError(f"webhook {url} timed out after {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise TransientError(f"webhook {url}: {type(exc).__name__}: {exc}") from exc
        if 200 <= response.status_code < 300:
            return f"HTTP {response.status_code}"
        raise TransientError(f"webhook {url} answered HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()
