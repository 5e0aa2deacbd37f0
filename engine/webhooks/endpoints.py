"""Registering, changing and rotating the secret of the endpoints the product receives
events at. Every function checks its input before it writes anything."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.store import new_event_id
from engine.webhooks.models import EventEndpoint
from engine.webhooks.patterns import check_patterns
from engine.webhooks.urls import UrlPolicy


class NotFound(LookupError):
    """An id that names nothing; `field` is where it came from."""

    def __init__(self, field: str, value: str, what: str) -> None:
        super().__init__(f"{field}: no {what} {value!r}")
        self.field = field


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    # Shown once, when the endpoint is made or its secret rotated.
    secret: str | None = None

    def public(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id, "url": self.url, "description": self.description, "event_types": self.event_types,
            "enabled": self.enabled, "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
        }
        if self.secret is not None:
            out["secret"] = self.secret
        return out


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _endpoint(row: EventEndpoint, *, secret: str | None = None) -> Endpoint:
    return Endpoint(row.id, row.url, row.description, list(row.event_types), row.enabled, row.created_at, secret)


def create_endpoint(session: Session, url: str, event_types: list[str], *, now: datetime, policy: UrlPolicy,
                    description: str = "") -> Endpoint:
    """Register `url` for the events `event_types` matches; the secret is returned once."""
    patterns = check_patterns(event_types)
    policy.check(url)
    row = EventEndpoint(id=new_event_id("we"), url=url, description=description, event_types=patterns,
                        secret=new_secret(), enabled=True, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return _endpoint(row, secret=row.secret)


def _row(session: Session, endpoint_id: str) -> EventEndpoint:
    row = session.get(EventEndpoint, endpoint_id)
    if row is None:
        raise NotFound("endpoint_id", endpoint_id, "webhook endpoint")
    return row


def get_endpoint(session: Session, endpoint_id: str) -> Endpoint:
    return _endpoint(_row(session, endpoint_id))


def list_endpoints(session: Session) -> list[Endpoint]:
    rows = session.scalars(select(EventEndpoint).order_by(EventEndpoint.created_at, EventEndpoint.id))
    return [_endpoint(r) for r in rows]


def update_endpoint(session: Session, endpoint_id: str, *, now: datetime, policy: UrlPolicy, url: str | None = None,
                    event_types: list[str] | None = None, description: str | None = None,
                    enabled: bool | None = None) -> Endpoint:
    """Change what is given; a disabled endpoint keeps its deliveries pending until enabled."""
    patterns = check_patterns(event_types) if event_types is not None else None
    if url is not None:
        policy.check(url)
    row = _row(session, endpoint_id)
    given = {"url": url, "event_types": patterns, "description": description, "enabled": enabled}
    for column, value in given.items():
        if value is not None:
            setattr(row, column, value)
    row.updated_at = now
    return _endpoint(row)


def rotate_secret(session: Session, endpoint_id: str, *, now: datetime, grace: timedelta = timedelta(hours=24)
                  ) -> Endpoint:
    """A new secret; the old one keeps signing beside it for `grace`, so a receiver can switch
    without missing a delivery (two signatures in `webhook-signature` meanwhile)."""
    row = _row(session, endpoint_id)
    row.previous_secret, row.previous_secret_until = row.secret, now + grace
    row.secret = new_secret()
    row.updated_at = now
    return _endpoint(row, secret=row.secret)
