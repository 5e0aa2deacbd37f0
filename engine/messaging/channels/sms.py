"""The SMS channel: E.164 numbers handed to a provider (by default a JSON-lines file). Moved from
engine/messaging/channels.py."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from engine.messaging.channels.base import Channel, Outgoing, PermanentError, RetryPolicy, TransientError


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
        line = json.dumps(
            {
                "id": message_id,
                "to": to,
                "text": text,
                "encoding": length.encoding,
                "segments": length.segments,
                "sent_at": datetime.now(UTC).isoformat(),
            },
            ensure_ascii=False,
        )
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
        return self.provider.send(to, message.rendered.text or "", message_id=message.notification_id)

    def close(self) -> None:
        pass
