"""`billing up`'s mail sink: a local SMTP server that keeps every message it is given as an
.eml file, so the demo's emails (invoices, dunning, upgrade offers) can be read without a
mail server. Real deployments set BILLING_SMTP_URL instead."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class _KeepAsFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{next(self._numbers):05d}.eml"
        data = envelope.original_content or envelope.content
        (self.directory / name).write_bytes(data if isinstance(data, bytes) else data.encode())
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, directory: Path, port: int, host: str = "127.0.0.1") -> None:
        self.directory, self.host, self.port = directory, host, port
        self._controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}?from=billing@example.com"

    def start(self) -> MailSink:
        from aiosmtpd.controller import Controller

        self.directory.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(_KeepAsFiles(self.directory), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
