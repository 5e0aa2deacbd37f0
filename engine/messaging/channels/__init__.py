"""Delivery channels behind one interface: email (SMTP), SMS (a provider), in-app (the
feed table) and webhooks (signed HTTP POST).

A channel's `send` either returns (delivered; optionally a provider message id) or raises
`TransientError` (try again later, with backoff) or `PermanentError` (no point retrying).
Channels never touch the notifications table; `engine.messaging.service` does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.messaging.models import InAppMessage
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


# -- email ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    """A file sent with an email."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


# Makes the file an email names by reference (Rendered.attachments), when it is sent. Raises
# LookupError when the reference names nothing (the email fails for good), anything else when
# the file cannot be made now (the email is tried again later).
AttachmentSource = Callable[[Mapping[str, str]], Attachment]


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


# An address we put on the wire: ASCII, no spaces or line breaks (no header injection).
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class RawEmail:
    sender: str
    recipient: str
    message_id: str
    data: bytes  # the whole RFC 5322 message, CRLF line ends


def _encode_header(value: str) -> str:
    """A header value on the wire: one line of ASCII, or RFC 2047 encoded words (base64,
    at most 45 bytes of UTF-8 each so a word stays under 76 characters), folded."""
    value = " ".join(value.split())  # no CR/LF can reach the header block
    if value.isascii() and len(value) <= 900:
        return value
    words: list[bytes] = []
    chunk = b""
    for char in value:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > 45:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return "\r\n ".join(
        "=?utf-8?b?" + base64.b64encode(w).decode("ascii") + "?="
        for w in words if w
    )


def _b64_part(content_type: str, text: str) -> str:
    body = base64.encodebytes(text.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
    return (f"Content-Type: {content_type}; charset=\"utf-8\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{body}")


def _file_part(file: Attachment) -> str:
    name = re.sub(r'[^A-Za-z0-9._-]', "_", file.filename)[:100] or "attachment"
    body = base64.encodebytes(file.data).decode("ascii").replace("\n", "\r\n")
    return (f"Content-Type: {file.content_type}; name=\"{name}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{body}")


def build_email(message: Outgoing, settings: SmtpSettings, files: Sequence[Attachment] = ()) -> RawEmail:
    """The MIME message (multipart/alternative: text, then HTML; inside multipart/mixed with
    the `files` when there are any), built directly: the `email` package's header machinery
    costs more than the SMTP exchange itself."""
    r = message.rendered
    to = (message.recipient or "").strip()
    if not to:
        raise PermanentError("no email address")
    if not _ADDRESS.match(to):
        raise PermanentError(f"email address {to!r} is not a plain ASCII address")
    sender = formataddr((settings.sender_name, settings.sender)) if settings.sender_name \
        else settings.sender
    domain = settings.sender.rpartition("@")[2] or "billing.local"
    # Stable across retries: a receiver that saw the message already can drop the copy.
    message_id = f"<{message.notification_id}@{domain}>"
    boundary = f"=_billing_{message.notification_id}"
    head = (
        f"From: {_encode_header(sender)}\r\n"
        f"To: {to}\r\n"
        f"Subject: {_encode_header(r.subject or '')}\r\n"
        f"Date: {format_datetime(message.created_at.astimezone(UTC))}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"X-Billing-Notification: {message.notification_id}\r\n"
        f"X-Billing-Template: {_encode_header(message.template)}\r\n"
        "MIME-Version: 1.0\r\n"
    )
    text = _b64_part("text/plain", r.text or "")
    if r.html:
        body = (f"Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
                f"--{boundary}\r\n{text}\r\n--{boundary}\r\n"
                f"{_b64_part('text/html', r.html)}\r\n--{boundary}--\r\n")
    else:
        body = text
    if files:
        mixed = f"=_billing_mixed_{message.notification_id}"
        parts = "".join(f"--{mixed}\r\n{_file_part(f)}\r\n" for f in files)
        body = (f"Content-Type: multipart/mixed; boundary=\"{mixed}\"\r\n\r\n"
                f"--{mixed}\r\n{body}\r\n{parts}--{mixed}--\r\n")
    return RawEmail(settings.sender, to, message_id, (head + body).encode("ascii"))


class EmailChannel(Channel):
    """SMTP over kept-open connections: a small pool, so that concurrent sends each have
    their own (a connection that fails is closed and replaced by a fresh one)."""

    name = "email"
    transactional = False

    def __init__(self, settings: SmtpSettings, retry: RetryPolicy | None = None,
                 attachments: AttachmentSource | None = None) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy(max_attempts=6)
        self.attachments = attachments
        self._mail_from = "FROM:" + smtplib.quoteaddr(settings.sender)
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, retry: RetryPolicy | None = None,
                 attachments: AttachmentSource | None = None) -> EmailChannel:
        return cls(SmtpSettings.from_url(url), retry, attachments)

    def _files(self, message: Outgoing) -> list[Attachment]:
        wanted = message.rendered.attachments
        if not wanted:
            return []
        if self.attachments is None:
            raise TransientError(f"no attachment source in this process for {list(wanted)}")
        files = []
        for ref in wanted:
            try:
                files.append(self.attachments(ref))
            except LookupError as exc:
                raise PermanentError(f"attachment {dict(ref)}: {exc}") from exc
            except Exception as exc:  # the database or the renderer, for now: later
                raise TransientError(f"attachment {dict(ref)}: {type(exc).__name__}: {exc}") from exc
        return files

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        if s.implicit_tls:
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=s.tls_context())
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            conn.ehlo()
            if s.starttls:
                conn.starttls(context=s.tls_context())
                conn.ehlo()
            if s.username:
                conn.login(s.username, s.password or "")
        except BaseException:
            _quietly_close(conn)
            raise
        return conn

    def _take(self) -> tuple[smtplib.SMTP | None, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), False
        return None, True

    def _give_back(self, conn: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append(conn)

    def send(self, message: Outgoing, session: Session | None = None) -> str | None:
        email = build_email(message, self.settings, self._files(message))
        conn, fresh = self._take()
        for attempt in (1, 2):
            try:
                if conn is None:
                    conn, fresh = self._connect(), True
                self._transaction(conn, email)
                self._give_back(conn)
                return None  # the Message-ID is <notification id@sender's domain>
            except smtplib.SMTPServerDisconnected as exc:
                # A kept-open connection the server dropped: reconnect once.
                _quietly_close(conn)
                conn = None
                if fresh or attempt == 2:
                    raise TransientError(f"SMTP server disconnected: {exc}") from exc
            except (smtplib.SMTPException, OSError) as exc:
                raise self._failure(conn, exc) from exc
        raise TransientError("SMTP: unreachable")  # pragma: no cover

    def _failure(self, conn: smtplib.SMTP | None, exc: smtplib.SMTPException | OSError) -> DeliveryError:
        """The error a failed SMTP transaction reports (a 5xx is permanent), the connection
        reset for the next message, or closed when the session itself broke."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            self._reset(conn)
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{r}: {c} {m!r}" for r, (c, m) in exc.recipients.items())
            if codes and all(c >= 500 for c in codes):
                return PermanentError(f"recipient refused: {detail}")
            return TransientError(f"recipient deferred: {detail}")
        if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
            self._reset(conn)
            text = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            return PermanentError(text) if exc.smtp_code >= 500 else TransientError(text)
        _quietly_close(conn)
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return TransientError(f"SMTP authentication failed: {exc.smtp_code} {exc.smtp_error!r}")
        return TransientError(f"SMTP {self.settings.host}:{self.settings.port}: {type(exc).__name__}: {exc}")

    def _transaction(self, conn: smtplib.SMTP, email: RawEmail) -> None:
        """What `smtplib.SMTP.sendmail` does for one recipient, raising the same errors,
        without parsing both addresses again on every message (its `quoteaddr` cost as
        much as the rest of the client side): the sender is quoted once, and build_email
        let only a plain address through as the recipient."""
        code, resp = conn.docmd("mail", self._mail_from)
        if code != 250:
            _close_on_421(conn, code)
            raise smtplib.SMTPSenderRefused(code, resp, email.sender)
        code, resp = conn.docmd("rcpt", f"TO:<{email.recipient}>")
        if code not in (250, 251):
            _close_on_421(conn, code)
            raise smtplib.SMTPRecipientsRefused({email.recipient: (code, resp)})
        code, resp = conn.data(email.data)
        if code != 250:
            _close_on_421(conn, code)
            raise smtplib.SMTPDataError(code, resp)

    def _reset(self, conn: smtplib.SMTP | None) -> None:
        """After a refused transaction the connection is still good: RSET and keep it."""
        if conn is None:
            return
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            _quietly_close(conn)
        else:
            self._give_back(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            _quietly_close(conn)


def _close_on_421(conn: smtplib.SMTP, code: int) -> None:
    # 421: the server is closing the connection; the RSET after the error then fails and
    # the connection is dropped instead of going back to the pool.
    if code == 421:
        _quietly_close(conn)


def _quietly_close(conn: smtplib.SMTP | None) -> None:
    try:
        if conn is not None:
            conn.close()
    except OSError:
        pass


# -- SMS -----------------------------------------------------------------------------------


class SmsProvider(Protocol):
    def send(self, to: str, text: str, *, message_id: str) -> str:
        """Hand the text to the provider; return its message id. Raise TransientError or
        PermanentError on failure."""
        ...


class FileSmsProvider:
    """The default provider: appends each SMS as a JSON line to a file (a sink for
    development, tests and demos)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, to: str, text: str, *, message_id: str) -> str:
        from engine.messaging.sms import sms_length

        length = sms_length(text)
        line = json.dumps({"id": message_id, "to": to, "text": text,
                           "encoding": length.encoding, "segments": length.segments,
                           "sent_at": datetime.now(UTC).isoformat()}, ensure_ascii=False)
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(line + "\n")
            except OSError as exc:
                raise TransientError(f"SMS sink {self.path}: {exc}") from exc
        return message_id

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines() if x]


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class SmsChannel(Channel):
    name = "sms"
    transactional = False

    def __init__(self, provider: SmsProvider, retry: RetryPolicy | None = None) -> None:
        self.provider = provider
        self.retry = retry or RetryPolicy(max_attempts=5)

    def send(self, message: Outgoing, session: Session | None = None) -> str | None:
        to = (message.recipient or "").replace(" ", "")
        if not _E164.match(to):
            raise PermanentError(f"phone number {message.recipient!r} is not in E.164 form")
        return self.provider.send(to, message.rendered.text or "",
                                  message_id=message.notification_id)

    def close(self) -> None:
        pass


# -- in-app --------------------------------------------------------------------------------


_INSERT_IN_APP = insert(InAppMessage.__table__)  # type: ignore[arg-type]


class InAppChannel(Channel):
    """Writes the feed row in the same transaction that marks the notification sent."""

    name = "in_app"
    transactional = True

    def __init__(self, retry: RetryPolicy | None = None) -> None:
        self.retry = retry or RetryPolicy(max_attempts=3)

    def send(self, message: Outgoing, session: Session | None = None) -> str | None:
        if session is None:
            raise TypeError("the in-app channel needs the delivery transaction's session")
        self.send_many([message], session)
        return None

    def send_many(self, messages: Sequence[Outgoing], session: Session) -> None:
        """All of a delivery group's feed rows in one statement."""
        if messages:
            session.execute(_INSERT_IN_APP, [self._row(m) for m in messages])

    @staticmethod
    def _row(message: Outgoing) -> dict[str, Any]:
        r = message.rendered
        return {
            "id": message.notification_id, "customer_id": message.customer_id,
            "template": message.template, "category": message.category,
            "title": (r.title or "")[:500], "body": r.body or "", "action_url": r.action_url,
            "created_at": message.created_at, "read_at": None,
        }

    def close(self) -> None:
        pass


# -- webhooks ------------------------------------------------------------------------------

SIGNATURE_HEADER = "Billing-Signature"
ID_HEADER = "Billing-Webhook-Id"
TIMESTAMP_HEADER = "Billing-Webhook-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, *, now: float | None = None,
                     tolerance: float = 300) -> bool:
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


def check_webhook_url(url: str, *, allow_private: bool = False,
                      resolve: Callable[[str], Iterable[str]] | None = None) -> None:
    """Only http(s); and unless allowed, no loopback/private/link-local target (SSRF)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(f"webhook URL {url!r} must be http(s)://host/...")
    if allow_private:
        return
    addresses = (resolve or _resolve)(parts.hostname)
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise PermanentError(f"webhook URL {url!r} points at a non-public address {ip}")


def _resolve(host: str) -> list[str]:
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]
    except socket.gaierror as exc:
        raise TransientError(f"cannot resolve {host}: {exc}") from exc


class WebhookChannel(Channel):
    name = "webhook"
    transactional = False

    def __init__(self, *, timeout: float = 10.0, retry: RetryPolicy | None = None,
                 allow_private: bool = False, wall_clock: Callable[[], float] = time.time,
                 client: httpx.Client | None = None) -> None:
        self.retry = retry or RetryPolicy(max_attempts=8, base=timedelta(minutes=1),
                                          cap=timedelta(hours=12))
        self.allow_private = allow_private
        self.wall_clock = wall_clock
        self.timeout = timeout
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False,
                                              headers={"User-Agent": "billing-engine-webhooks"})

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


# -- the set of channels a delivery run uses -----------------------------------------------


class Channels:
    """The configured channels by name. A channel that is not configured keeps its
    notifications pending (not lost) until it is."""

    def __init__(self, channels: Iterable[Channel] = ()) -> None:
        self._by_name: dict[str, Channel] = {c.name: c for c in channels}

    @classmethod
    def from_settings(cls, *, smtp_url: str | None = None, sms_provider: SmsProvider | None
                      = None, sms_file: str | Path = "var/sms.jsonl",
                      webhooks: bool = True, allow_private_webhooks: bool = False,
                      attachments: AttachmentSource | None = None) -> Channels:
        """Email when an SMTP URL is given (default: BILLING_SMTP_URL), SMS to the provider
        (default: a JSON-lines file), in-app always, webhooks unless turned off. `attachments`
        makes the files emails carry (an invoice's PDF)."""
        if smtp_url is None:
            from engine.config import get_settings

            smtp_url = get_settings().smtp_url
        chans: list[Channel] = [InAppChannel()]
        if smtp_url:
            chans.append(EmailChannel.from_url(smtp_url, attachments=attachments))
        chans.append(SmsChannel(sms_provider or FileSmsProvider(sms_file)))
        if webhooks:
            chans.append(WebhookChannel(allow_private=allow_private_webhooks))
        return cls(chans)

    def get(self, name: str) -> Channel | None:
        return self._by_name.get(name)

    def require(self, name: str) -> Channel:
        channel = self._by_name.get(name)
        if channel is None:
            raise KeyError(f"channel {name!r} is not configured")
        return channel

    def names(self) -> list[str]:
        return list(self._by_name)

    def close(self) -> None:
        for channel in self._by_name.values():
            channel.close()
