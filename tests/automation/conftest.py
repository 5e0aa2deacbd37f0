"""A whole engine on a test clock for the automation tests: the system from build_system with
automation and the scheduler installed, the sandbox PSP (a real uvicorn server) for
collection, and a real aiosmtpd SMTP server for the emails."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
import uvicorn

from engine import sales
from engine.clock import TestClock
from engine.config import Settings
from engine.payments import PaymentService, create_sandbox_app
from engine.rules import publish_ruleset
from engine.system import System, build_system
from tests.smtp import smtp_server

START = datetime(2026, 3, 1, tzinfo=UTC)  # a Sunday 00:00: day 0 of every scenario
PSP_KEY = "sk_sandbox_test"
PSP_SECRET = "whsec_automation"

FAILING_CARD = "4000000000009995"  # insufficient funds, retryable (docs/payments.md)
GOOD_CARD = "4242424242424242"

CATALOG: dict[str, Any] = {
    "catalog": "dunning-test",
    "currency": "USD",
    "features": {
        "reports": {"name": "Reports", "type": "boolean"},
        "sso": {"name": "Single sign-on", "type": "boolean"},
        "exports": {"name": "Exports", "type": "quantity"},
    },
    "plans": {
        "basic": {
            "name": "Basic", "interval": "month", "upgrade_to": ["team"],
            "prices": [{"id": "base", "name": "Basic fee", "model": "flat", "amount": "20.00"}],
            "entitlements": {"reports": True, "exports": 2},
        },
        "team": {
            "name": "Team", "interval": "month",
            "prices": [{"id": "base", "name": "Team fee", "model": "flat", "amount": "99.00"}],
            "entitlements": {"reports": True, "sso": True, "exports": 50},
        },
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@dataclass
class Mail:
    day: int  # days since START on the engine's clock when the server received it
    to: str
    subject: str
    text: str
    html: str


@dataclass
class Inbox:
    """aiosmtpd handler: every message, stamped with the engine's (test) clock."""

    clock: TestClock | None = None
    mails: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg: EmailMessage = message_from_bytes(envelope.content, policy=policy.default)
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        day = (self.clock.now() - START).days if self.clock else -1
        with self.lock:
            self.mails.append(Mail(day, str(msg["To"]), str(msg["Subject"]),
                                   text.get_content() if text else "",
                                   html.get_content() if html else ""))
        return "250 OK"

    def subjects(self) -> list[tuple[int, str]]:
        with self.lock:
            return [(m.day, m.subject) for m in self.mails]


@pytest.fixture(scope="session")
def psp() -> Iterator[Server]:
    server = Server(create_sandbox_app(api_key=PSP_KEY, webhook_secret=PSP_SECRET)).start()
    yield server
    server.stop()


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, str]]:
    handler = Inbox()
    with smtp_server(handler) as url:
        yield handler, url


def make_system(tmp_path: Any, psp_url: str, smtp_url: str, *, database_url: str | None = None,
                rulesets: tuple[str, ...] = ("dunning", "notifications")) -> System:
    settings = Settings(
        database_url=database_url or f"sqlite:///{tmp_path}/automation.db",
        test_clock=START.isoformat(), smtp_url=smtp_url, psp_url=psp_url,
        psp_api_key=PSP_KEY, psp_webhook_secret=PSP_SECRET, access_cache_ttl=3600,
    )
    system = build_system(settings, automation=True)
    with system.db.session() as s:
        sales.publish_catalog(s, CATALOG, "test", clock=system.clock)
        for name in rulesets:
            publish_ruleset(s, f"rules/{name}.yaml", "test", smoke=False, clock=system.clock)
    system.sync_rules()
    return system


@pytest.fixture
def engine_system(tmp_path: Any, psp: Server, inbox: tuple[Inbox, str]) -> Iterator[System]:
    handler, smtp_url = inbox
    system = make_system(tmp_path, psp.url, smtp_url)
    handler.clock = system.test_clock
    yield system
    system.db.dispose()


def new_customer(system: System, cid: str, card: str, plan: str = "basic",
                 email: str | None = None) -> str:
    """A customer subscribed at the current time, paying with `card`; returns the invoice
    id of the first period (collected, and failed or paid, by the time this returns)."""
    with system.db.session() as s:
        sales.create_customer(s, {"id": cid, "email": email or f"{cid}@example.com",
                                  "name": f"Customer {cid}", "country": "US"}, clock=system.clock)
        sales.create_subscription(s, cid, plan, clock=system.clock, payment_method=card)
    system.drain()
    system.jobs.run_due(system.clock.now())
    with system.db.session() as s:
        invoices = sales.list_invoices(s, cid)["items"]
    return str(invoices[0]["id"]) if invoices else ""


def payment_service(system: System) -> PaymentService:
    """The system's own payment service (these systems are built with the sandbox)."""
    assert system.payments is not None
    return system.payments
