from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn

from engine import sales
from engine.api import create_app, create_key
from engine.config import Settings
from engine.system import System, build_system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    system: System
    url: str
    admin: str
    product: str

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def start_server(system: System) -> tuple[uvicorn.Server, threading.Thread, str]:
    return start_app(create_app(system.api_context()))


def start_app(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def keyed_system(settings: Settings) -> tuple[System, str, str]:
    """A system with the SaaS example catalog published, and its admin and product keys."""
    system = build_system(settings)
    now = datetime(2026, 11, 1, 9, tzinfo=UTC)
    with system.db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "test", clock=system.clock)
        _, admin = create_key(s, "admin", now=now)
        _, product = create_key(s, "product", now=now)
    return system, admin, product


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """The app served by uvicorn on a free port, for the `with` block; yields its URL."""
    server, thread, url = start_app(app)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def running(tmp_path) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    # Denial events written in the check's own transaction, so a test can read them at once
    # (the buffered writer has its own test in tests/access).
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/api.db",
        test_clock="2026-11-01T09:00:00Z",
        access_cache_ttl=60,
        access_denial_buffer_ms=0,
    )
    system, admin, product = keyed_system(settings)
    stop = threading.Event()
    system.start_workers(stop)
    server, thread, url = start_server(system)
    yield Running(system, url, admin, product)
    server.should_exit = True
    thread.join(10)
    stop.set()
    system.db.dispose()
