"""An email on the wire: the MIME message (text and HTML, files attached), its headers encoded
and the recipient checked to be a plain address. Moved from engine/messaging/channels.py."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import format_datetime, formataddr

from engine.messaging.channels.base import Outgoing, PermanentError
from engine.messaging.channels.smtp_settings import SmtpSettings


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
    return "\r\n ".join("=?utf-8?b?" + base64.b64encode(w).decode("ascii") + "?=" for w in words if w)


def _b64_part(content_type: str, text: str) -> str:
    body = base64.encodebytes(text.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
    return f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}'


def _file_part(file: Attachment) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", file.filename)[:100] or "attachment"
    body = base64.encodebytes(file.data).decode("ascii").replace("\n", "\r\n")
    return (
        f'Content-Type: {file.content_type}; name="{name}"\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{body}"
    )


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
    sender = formataddr((settings.sender_name, settings.sender)) if settings.sender_name else settings.sender
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
        body = (
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\n{text}\r\n--{boundary}\r\n"
            f"{_b64_part('text/html', r.html)}\r\n--{boundary}--\r\n"
        )
    else:
        body = text
    if files:
        mixed = f"=_billing_mixed_{message.notification_id}"
        parts = "".join(f"--{mixed}\r\n{_file_part(f)}\r\n" for f in files)
        body = f'Content-Type: multipart/mixed; boundary="{mixed}"\r\n\r\n--{mixed}\r\n{body}\r\n{parts}--{mixed}--\r\n'
    return RawEmail(settings.sender, to, message_id, (head + body).encode("ascii"))
