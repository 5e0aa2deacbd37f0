"""Where the engine may post a webhook: http(s) only, and (unless allowed) no loopback, private
or link-local target, so an endpoint cannot make the engine post into its own network (SSRF).
Shared by the two subsystems that post to customers' URLs, messaging's webhook channel and the
event webhooks (engine.webhooks), neither of which imports the other. Imports nothing of the
engine."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit


class UrlRefused(ValueError):
    """The URL can never be posted to: not http(s), or a non-public address."""


class HostUnresolved(ValueError):
    """The host does not resolve now: it may later."""


def check_public_url(
    url: str, *, allow_private: bool = False, resolve: Callable[[str], Iterable[str]] | None = None
) -> None:
    """Only http(s); and unless allowed, no loopback/private/link-local target."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused(f"webhook URL {url!r} must be http(s)://host/...")
    if allow_private:
        return
    for address in (resolve or _resolve)(parts.hostname):
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise UrlRefused(f"webhook URL {url!r} points at a non-public address {ip}")


def _resolve(host: str) -> list[str]:
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]
    except socket.gaierror as exc:
        raise HostUnresolved(f"cannot resolve {host}: {exc}") from exc
