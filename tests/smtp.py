"""A real SMTP server (aiosmtpd) on a free port for a test, with the engine's SMTP URL for it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server(handler: Any, *, timeout: int = 5) -> Iterator[str]:
    """`handler` (an aiosmtpd handler: `handle_DATA`) receives every message while the block
    runs; yields `BILLING_SMTP_URL` for it."""
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{controller.port}?from=billing@example.com&timeout={timeout}"
    finally:
        controller.stop()
