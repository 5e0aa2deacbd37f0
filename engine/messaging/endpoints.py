"""The webhook endpoints a customer registers to receive their notifications."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.messaging.channels import PermanentError, TransientError, check_webhook_url
from engine.messaging.models import WebhookEndpoint as WebhookEndpointRow
from engine.store import new_event_id

# -- webhook endpoints ---------------------------------------------------------------------

MAX_WEBHOOK_URL = 2000  # the `url` column's length


class EndpointUrlRefused(ValueError):
    """The URL cannot take a customer's notifications (the `url` field)."""


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    customer_id: str
    url: str
    secret: str
    enabled: bool

    def public(self) -> dict[str, object]:
        """What an operator sees (`GET /v1/customers/{id}/notification-webhooks`): never the secret."""
        return {"id": self.id, "url": self.url, "enabled": self.enabled}


def add_webhook_endpoint(
    session: Session,
    customer_id: str,
    url: str,
    *,
    now: datetime,
    secret: str | None = None,
    allow_private: bool = True,
) -> WebhookEndpoint:
    """Register a URL for a customer's notifications. The secret (generated unless given)
    signs every delivery; hand it to the customer once. `allow_private=False` (the HTTP door,
    unless the deployment allows private targets) also refuses loopback, private and
    link-local targets and hosts that do not resolve, as the channel would at delivery."""
    check_endpoint_url(url, allow_private=allow_private)
    row = WebhookEndpointRow(
        id=new_event_id("whe"),
        customer_id=customer_id,
        url=url,
        secret=secret or "whsec_" + secrets.token_urlsafe(32),
        enabled=True,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return WebhookEndpoint(row.id, row.customer_id, row.url, row.secret, row.enabled)


def check_endpoint_url(url: str, *, allow_private: bool) -> None:
    """The webhook channel's own URL check (engine/public_urls.py), made at registration."""
    if len(url) > MAX_WEBHOOK_URL:
        raise EndpointUrlRefused(f"url: {len(url)} characters; at most {MAX_WEBHOOK_URL}")
    try:
        check_webhook_url(url, allow_private=allow_private)
    except (PermanentError, TransientError) as exc:
        raise EndpointUrlRefused(f"url: {exc}") from None


def list_webhook_endpoints(session: Session, customer_id: str) -> list[WebhookEndpoint]:
    """The customer's endpoints, oldest first, disabled ones too."""
    rows = session.scalars(
        select(WebhookEndpointRow)
        .where(WebhookEndpointRow.customer_id == customer_id)
        .order_by(WebhookEndpointRow.created_at)
    )
    return [WebhookEndpoint(r.id, r.customer_id, r.url, r.secret, r.enabled) for r in rows]


def disable_webhook_endpoint(session: Session, endpoint_id: str, *, customer_id: str | None = None) -> bool:
    """Whether the endpoint (of `customer_id`, when given) exists; it is disabled if so."""
    query = update(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id)
    if customer_id is not None:
        query = query.where(WebhookEndpointRow.customer_id == customer_id)
    result = session.execute(query.values(enabled=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]
