"""The customer page's links: `/portal/{token}`, where the token names one customer and when
it stops working, signed with HMAC-SHA256. Pure functions of a secret; no database.

    token = base64url({"c": customer_id, "e": expiry (Unix seconds)}) "." base64url(HMAC)

A token whose signature does not match (a changed customer id or expiry, another secret) is
"tampered"; one past its expiry is "expired". Either way nothing is shown and nothing is
written. A form on the page carries a CSRF token bound to the link and to a random nonce kept
in a SameSite cookie (`csrf_token`), so a request forged from another site fails even by
someone who knows the link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


class LinkError(Exception):
    """A link that grants nothing. `reason`: malformed | tampered | expired."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Grant:
    """What a valid link grants: one customer, until `expires_at`."""

    customer_id: str
    expires_at: datetime
    token: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, *parts: str) -> str:
    return _b64(hmac.new(secret.encode(), "|".join(parts).encode(), hashlib.sha256).digest())


def sign_link(secret: str, customer_id: str, expires_at: datetime) -> str:
    payload = _b64(json.dumps({"c": customer_id, "e": int(expires_at.timestamp())},
                              separators=(",", ":")).encode())
    return f"{payload}.{_mac(secret, 'portal', payload)}"


def verify_link(secrets: Sequence[str], token: str, now: datetime) -> Grant:
    """The grant of `token`, checked against every secret (a rotation keeps the old one
    verifying). Raises LinkError."""
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac or len(token) > 600:
        raise LinkError("malformed", "this link is incomplete")
    if not any(hmac.compare_digest(mac, _mac(s, "portal", payload)) for s in secrets):
        raise LinkError("tampered", "this link is not valid")
    try:
        data = json.loads(_unb64(payload))
        customer_id, expiry = str(data["c"]), int(data["e"])
    except (ValueError, KeyError, TypeError):
        raise LinkError("malformed", "this link is incomplete") from None
    expires_at = datetime.fromtimestamp(expiry, UTC)
    if now >= expires_at:
        raise LinkError("expired", "this link has expired")
    return Grant(customer_id, expires_at, token)


def csrf_token(secret: str, link_token: str, nonce: str) -> str:
    """The form token of a page opened with `link_token` by the browser holding `nonce`."""
    return _mac(secret, "csrf", link_token, nonce)


def check_csrf(secrets: Sequence[str], link_token: str, nonce: str, given: str) -> bool:
    if not nonce or not given:
        return False
    return any(hmac.compare_digest(given, csrf_token(s, link_token, nonce)) for s in secrets)
