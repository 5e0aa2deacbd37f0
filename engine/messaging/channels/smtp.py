"""The email channel: SMTP over a small pool of kept-open connections, a failure classified as
transient or permanent. Moved from engine/messaging/channels.py."""

from __future__ import annotations

import smtplib
import threading

from sqlalchemy.orm import Session

from engine.messaging.channels.base import Channel, DeliveryError, Outgoing, PermanentError, RetryPolicy, TransientError
from engine.messaging.channels.mime import Attachment, AttachmentSource, RawEmail, build_email
from engine.messaging.channels.smtp_settings import SmtpSettings


class EmailChannel(Channel):
    """SMTP over kept-open connections: a small pool, so that concurrent sends each have
    their own (a connection that fails is closed and replaced by a fresh one)."""

    name = "email"
    transactional = False

    def __init__(
        self, settings: SmtpSettings, retry: RetryPolicy | None = None, attachments: AttachmentSource | None = None
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy(max_attempts=6)
        self.attachments = attachments
        self._mail_from = "FROM:" + smtplib.quoteaddr(settings.sender)
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    @classmethod
    def from_url(
        cls, url: str, retry: RetryPolicy | None = None, attachments: AttachmentSource | None = None
    ) -> EmailChannel:
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
