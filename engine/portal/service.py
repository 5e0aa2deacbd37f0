"""What the customer page needs from the running engine, and the links to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.clock import Clock
from engine.pdf import InstructionsOf, Seller
from engine.portal.links import Grant, sign_link, verify_link
from engine.portal.readers import PortalReaders
from engine.store import Database
from engine.store.secrets import stored_secret

if TYPE_CHECKING:
    from engine.payments import PaymentService

SECRET_NAME = "portal_links"
MAX_LINK_DAYS = 366


def origins(*urls: str) -> tuple[str, ...]:
    """scheme://host[:port] of each URL given (empty ones left out)."""
    from urllib.parse import urlsplit

    found = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            found.append(f"{parts.scheme}://{parts.netloc}")
    return tuple(found)


class PortalLinks:
    """Signs and checks customer-page links. The secret is BILLING_PORTAL_SECRET (several,
    comma-separated: the first signs, all verify), else the one generated once for this
    database and stored in it: read when this is made, so no request waits for it."""

    def __init__(self, settings: Any, db: Database) -> None:
        configured = [s.strip() for s in str(getattr(settings, "portal_secret", "") or "").split(",") if s.strip()]
        if any(len(s) < 16 for s in configured):
            raise ValueError("BILLING_PORTAL_SECRET: each secret needs at least 16 characters")
        self.secrets: list[str] = configured or [stored_secret(db, SECRET_NAME)]
        public = str(getattr(settings, "public_url", "") or "")
        host, port = getattr(settings, "api_host", "127.0.0.1"), getattr(settings, "api_port", 8080)
        self.base_url = (public or f"http://{host}:{port}").rstrip("/")
        self.days = int(getattr(settings, "portal_link_days", 30) or 30)

    def customer_page(self, customer_id: str, now: datetime, days: int | None = None) -> dict[str, str]:
        """{url, expires_at, token} of a link to `customer_id`'s page, valid `days` (default:
        BILLING_PORTAL_LINK_DAYS) from `now`."""
        expires = now + timedelta(days=days or self.days)
        token = sign_link(self.secrets[0], customer_id, expires)
        return {"url": f"{self.base_url}/portal/{token}", "expires_at": expires.replace(microsecond=0).isoformat(),
                "token": token}

    def verify(self, token: str, now: datetime) -> Grant:
        return verify_link(self.secrets, token, now)


@dataclass
class PortalConfig:
    """The customer page's and the PDF routes' view of the system (engine.system makes it)."""

    db: Database
    clock: Clock
    links: PortalLinks
    seller: Seller
    # How an invoice PDF says to pay it (engine.pdf.instructions.payment_instructions).
    instructions: InstructionsOf
    # What the page reads and writes of sales and messaging (engine/system/portal_readers.py).
    read: PortalReaders
    # The system's payment service; None: nothing is paid or changed through a provider here.
    payments: PaymentService | None = None
    templates: Path | None = None
    # Where the provider's hosted forms live (origins, e.g. the sandbox's URL): the page's
    # Content-Security-Policy lets its forms be redirected there and nowhere else.
    hosted_origins: tuple[str, ...] = ()
    after_commit: Callable[[], None] = lambda: None
    invalidate: Callable[[str], None] = lambda _customer_id: None
    extra: dict[str, Any] = field(default_factory=dict)
