"""Where an endpoint may point: https, and not at a private, loopback or link-local address
(the engine would otherwise post into its own network), unless the deployment allows it. The
address check is the one messaging's webhook channel makes too (engine/public_urls.py)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from engine.public_urls import HostUnresolved, UrlRefused, check_public_url


class UrlError(ValueError):
    """The endpoint URL is refused (the `url` field)."""


@dataclass(frozen=True)
class UrlPolicy:
    # BILLING_WEBHOOKS_ALLOW_HTTP / BILLING_WEBHOOKS_ALLOW_PRIVATE: tests and local setups.
    allow_http: bool = False
    allow_private: bool = False

    def check(self, url: str) -> str:
        if len(url) > 2000:
            raise UrlError(f"url: {len(url)} characters; at most 2000")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise UrlError(f"url: {url!r} is not an https://host/... URL")
        if parts.scheme == "http" and not self.allow_http:
            raise UrlError(f"url: {url!r} must be https (plain http is allowed only by BILLING_WEBHOOKS_ALLOW_HTTP)")
        try:
            check_public_url(url, allow_private=self.allow_private)
        except (UrlRefused, HostUnresolved) as exc:
            raise UrlError(f"url: {exc} (allowed only by BILLING_WEBHOOKS_ALLOW_PRIVATE)") from None
        return url
