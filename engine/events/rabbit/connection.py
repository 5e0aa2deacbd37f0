"""A connection to the broker named for its process and role, the URL shown without its password, and
the wait between attempts that a stop ends. Moved from engine/events/rabbit.py."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import (
    AbstractConnection,
)

from engine.events.config import BusConfig


def redact_url(url: str) -> str:
    """The URL without its password, for logs and `broker status`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def connect(url: str, role: str, config: BusConfig, timeout: float = 5.0) -> AbstractConnection:
    name = f"{config.prefix}:{role}:{os.getpid()}"
    return await aio_pika.connect(url, timeout=timeout, client_properties={"connection_name": name})


async def sleep_unless_stopped(stop: threading.Event, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not stop.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.05))
