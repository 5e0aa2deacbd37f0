"""Fixtures for payments: the sandbox PSP and a webhook receiver, each a real uvicorn server
on a free loopback port, shared by the session; a fresh database and service per test."""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from engine.clock import SystemClock
from engine.payments import (
    CollectableInvoice,
    PaymentService,
    SandboxAdapter,
    create_sandbox_app,
    webhook_router,
)
from engine.store import Database, OutboxEvent

API_KEY = "sk_sandbox_test"
SECRET = "whsec_test_secret"
SLOW_SECONDS = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


class CurrentDatabase:
    """The webhook receiver outlives each test's database: it writes to whichever is current."""

    db: Database | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        assert self.db is not None, "no database for the webhook receiver"
        with self.db.session() as s:
            yield s


CURRENT = CurrentDatabase()


class CurrentService:
    """The receiver's payment service: each test's own (the adapters and clock it built)."""

    service: PaymentService | None = None

    def __getattr__(self, name: str) -> Any:
        if self.service is None:  # between tests (or a test with its own system): no provider here
            return {} if name == "adapters" else None
        return getattr(self.service, name)


CURRENT_SERVICE = CurrentService()


@pytest.fixture(scope="session")
def receiver() -> Iterator[Server]:
    app = FastAPI()
    app.include_router(webhook_router(CURRENT, CURRENT_SERVICE))  # type: ignore[arg-type]
    server = Server(app).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox(receiver: Server) -> Iterator[Server]:
    app = create_sandbox_app(
        api_key=API_KEY,
        webhook_url=f"{receiver.url}/webhooks/psp/sandbox",
        webhook_secret=SECRET,
        slow_seconds=SLOW_SECONDS,
        async_delay=0.2,
    )
    server = Server(app).start()
    yield server
    server.stop()


@pytest.fixture
def adapter(sandbox: Server) -> Iterator[SandboxAdapter]:
    a = SandboxAdapter(sandbox.url, api_key=API_KEY, webhook_secret=SECRET, timeout=5.0)
    yield a
    a.close()


@pytest.fixture
def service(adapter: SandboxAdapter) -> PaymentService:
    # The sandbox runs on the wall clock, so the engine does too in these end-to-end tests:
    # settlement days and capture times must agree.
    return PaymentService([adapter], SystemClock())


@pytest.fixture
def pdb(sqlite_db: Database, service: PaymentService) -> Iterator[Database]:
    """A SQLite database the webhook receiver writes to as well."""
    CURRENT.db, CURRENT_SERVICE.service = sqlite_db, service
    yield sqlite_db
    CURRENT.db, CURRENT_SERVICE.service = None, None


@pytest.fixture
def any_db(db: Database, service: PaymentService) -> Iterator[Database]:
    """The same test on SQLite and PostgreSQL."""
    CURRENT.db, CURRENT_SERVICE.service = db, service
    yield db
    CURRENT.db, CURRENT_SERVICE.service = None, None


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(5)}"


def invoice(customer: str, amount: str, currency: str = "CHF", attempt: int = 1,
            invoice_id: str | None = None) -> CollectableInvoice:
    return CollectableInvoice(invoice_id or new_id("inv"), customer, Decimal(amount), currency, attempt)


def events(db: Database, type_: str, **match: Any) -> list[dict[str, Any]]:
    with db.session() as s:
        rows = s.scalars(select(OutboxEvent).where(OutboxEvent.type == type_).order_by(OutboxEvent.seq)).all()
        return [r.properties for r in rows
                if all(r.properties.get(k) == v for k, v in match.items())]


def sandbox_state(sandbox: Server) -> dict[str, Any]:
    r = httpx.get(f"{sandbox.url}/v1/sandbox/payments", headers={"Authorization": f"Bearer {API_KEY}"})
    r.raise_for_status()
    result: dict[str, Any] = r.json()
    return result


def sandbox_payments(sandbox: Server, key_prefix: str) -> list[dict[str, Any]]:
    return [p for p in sandbox_state(sandbox)["payments"] if p["idempotency_key"].startswith(key_prefix)]


def wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
