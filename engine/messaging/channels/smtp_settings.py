"""BILLING_SMTP_URL read into `SmtpSettings` (server, credentials, TLS, sender) and the TLS
context it asks for. Moved from engine/messaging/channels.py."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

# The values a boolean option of BILLING_SMTP_URL may take.
_BOOLEANS = {**dict.fromkeys(("1", "true", "yes", "on"), True), **dict.fromkeys(("0", "false", "no", "off"), False)}


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    implicit_tls: bool = False
    sender: str = "billing@localhost"
    sender_name: str | None = None
    timeout: float = 10.0
    verify: bool = True
    cafile: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        """`smtp://user:pass@host:port?starttls=1&from=billing@example.com` (BILLING_SMTP_URL).

        `smtps://` is TLS from the first byte (port 465). Query options: `starttls`,
        `from`, `from_name`, `timeout` (seconds), `verify=0` (accept any certificate: tests
        only), `cafile` (trust this CA bundle)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"BILLING_SMTP_URL: scheme must be smtp or smtps, got {url!r}")
        if not parts.hostname:
            raise ValueError("BILLING_SMTP_URL: no host")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}

        def flag(name: str, default: bool) -> bool:
            value = query.get(name)
            if value is None:
                return default
            parsed = _BOOLEANS.get(value.lower())
            if parsed is None:
                raise ValueError(f"BILLING_SMTP_URL: {name}={value!r} is not a boolean")
            return parsed

        implicit = parts.scheme == "smtps"
        starttls = flag("starttls", False)
        try:
            port = parts.port or (465 if implicit else 587 if starttls else 25)
            timeout = float(query.get("timeout", 10))
        except ValueError as exc:
            raise ValueError(f"BILLING_SMTP_URL: {exc}") from exc
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            starttls=starttls and not implicit,
            implicit_tls=implicit,
            sender=query.get("from", "billing@localhost"),
            sender_name=query.get("from_name"),
            timeout=timeout,
            verify=flag("verify", True),
            cafile=query.get("cafile"),
        )

    def tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.cafile)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx
