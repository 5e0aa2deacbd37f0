"""A whole engine for the documents and the customer page: build_system with the scheduler, on
a test clock, served by uvicorn (the page's links and the provider's redirects are real URLs),
the sandbox PSP and an SMTP server from tests/automation, the shipped rules."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import uvicorn

from engine import messaging, sales
from engine.api import create_app, create_key
from engine.config import Settings
from engine.rules import publish_ruleset
from engine.system import System, build_system
from tests.automation.conftest import PSP_KEY, PSP_SECRET, START, Server, free_port, psp  # noqa: F401
from tests.smtp import smtp_server

SELLER = {"seller_name": "Example Billing GmbH", "seller_address": "Hauptstraße 1; 10115 Berlin",
          "seller_tax_id": "DE123456789", "seller_iban": "DE89370400440532013000"}


def pdf_text(data: bytes) -> str:
    """What a reader of the PDF sees: the text of every page (pypdf)."""
    from pypdf import PdfReader

    assert data.startswith(b"%PDF-"), data[:20]
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


@dataclass
class Sent:
    to: str
    subject: str
    text: str
    html: str
    attachments: list[tuple[str, str, bytes]]


@dataclass
class RawInbox:
    """aiosmtpd handler keeping each message with its attachments."""

    mails: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg: EmailMessage = message_from_bytes(envelope.content, policy=policy.default)
        text, html = msg.get_body(("plain",)), msg.get_body(("html",))
        files = [(str(p.get_filename()), p.get_content_type(), p.get_payload(decode=True) or b"")
                 for p in msg.iter_attachments()]
        with self.lock:
            self.mails.append(Sent(str(msg["To"]), str(msg["Subject"]), text.get_content() if text else "",
                                   html.get_content() if html else "", files))
        return "250 OK"

    def to(self, address: str) -> list[Sent]:
        with self.lock:
            return [m for m in self.mails if m.to == address]


def portal_link(text: str) -> str:
    found = re.search(r"(http://127\.0\.0\.1:\d+/portal/[A-Za-z0-9_.=-]+)", text)
    assert found, text
    return found.group(1)


@dataclass
class Engine:
    system: System
    url: str
    admin: httpx.Client
    product: httpx.Client
    inbox: RawInbox
    psp_url: str

    def advance(self, to: str) -> None:
        r = self.admin.post("/v1/clock/advance", json={"to": to})
        assert r.status_code == 200, r.text
        self.deliver()

    def deliver(self) -> None:
        """The events applied and every email due now sent (over the scheduler's channels)."""
        self.system.drain()
        assert self.system.channels is not None
        messaging.deliver_pending(self.system.db, self.system.channels, now=self.system.clock.now(),
                                  renderer=self.system.renderer)

    def customer(self, cid: str, *, name: str, country: str, locale: str = "en", tax_id: str | None = None,
                 card: str | None = None, plan: str = "pro", quantity: int = 1, coupon: str | None = None,
                 address: str | None = None) -> None:
        body: dict[str, Any] = {"id": cid, "email": f"{cid}@example.com", "name": name, "country": country,
                                "attributes": {"locale": locale, **({"address": address} if address else {})}}
        if tax_id:
            body["tax_id"] = tax_id
        r = self.admin.post("/v1/customers", json=body)
        assert r.status_code == 201, r.text
        if card != "none":  # "none": no method yet (the customer page adds one)
            method = {"type": "card", "token": card} if card else {"type": "bank_transfer"}
            r = self.admin.post(f"/v1/customers/{cid}/payment_methods", json=method)
            assert r.status_code == 201, r.text
        sub: dict[str, Any] = {"customer_id": cid, "plan": plan, "quantity": quantity, "trial_days": 0}
        if coupon:
            sub["coupon"] = coupon
        r = self.admin.post("/v1/subscriptions", json=sub)
        assert r.status_code == 201, r.text
        self.deliver()

    def invoices(self, cid: str) -> list[dict[str, Any]]:
        items = self.admin.get(f"/v1/customers/{cid}/invoices").json()["items"]
        return [self.admin.get(f"/v1/invoices/{i['id']}").json() for i in reversed(items)]


@pytest.fixture
def inbox() -> Iterator[tuple[RawInbox, str]]:
    handler = RawInbox()
    with smtp_server(handler) as url:
        yield handler, url


@pytest.fixture
def engine(tmp_path: Any, psp: Server, inbox: tuple[RawInbox, str]) -> Iterator[Engine]:  # noqa: F811
    with serving(tmp_path, inbox, psp_url=psp.url, psp_api_key=PSP_KEY, psp_webhook_secret=PSP_SECRET) as found:
        yield found


@contextmanager
def serving(tmp_path: Any, inbox: tuple[RawInbox, str], **provider: Any) -> Iterator[Engine]:
    """The engine with the payment provider the settings in `provider` name."""
    handler, smtp_url = inbox
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/portal.db", test_clock=START.isoformat(), smtp_url=smtp_url,
        access_cache_ttl=3600, access_denial_buffer_ms=0, public_url=url, **SELLER, **provider,
    )
    system = build_system(settings, automation=True)
    with system.db.session() as s:
        for catalog in ("catalogs/saas.yaml", "catalogs/content.yaml"):
            sales.publish_catalog(s, catalog, "test", clock=system.clock)
        for name in ("dunning", "notifications"):
            publish_ruleset(s, f"rules/{name}.yaml", "test", smoke=False, clock=system.clock)
        _, admin = create_key(s, "admin", now=START)
        _, product = create_key(s, "product", now=START)
    system.sync_rules()
    stop = threading.Event()
    system.start_workers(stop)
    server = uvicorn.Server(uvicorn.Config(create_app(system.api_context()), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the engine did not start"
        time.sleep(0.02)
    clients = [httpx.Client(base_url=url, headers={"Authorization": f"Bearer {k}"}, timeout=30)
               for k in (admin, product)]
    try:
        yield Engine(system, url, clients[0], clients[1], handler,
                     str(provider.get("psp_url") or provider.get("stripe_api_base")))
    finally:
        for c in clients:
            c.close()
        server.should_exit = True
        thread.join(10)
        stop.set()
        system.db.dispose()
