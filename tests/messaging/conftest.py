"""Real local servers for the messaging tests: an aiosmtpd SMTP server (plain, and one with
STARTTLS + AUTH) and an HTTP server that plays a customer's webhook endpoint."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from engine.messaging import FileSmsProvider, InAppChannel, verify_signature

CUSTOMER = {
    "id": "cus_1",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "phone": "+4915112345678",
    "locale": "en",
    "timezone": "Europe/Berlin",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(msg)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def wait_for(self, n: int, timeout: float = 5.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.01)
        return list(self.messages)


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox
    controller: Controller

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}?from=billing@example.com&timeout=5"


def start_smtp(port: int | None = None, **kwargs: Any) -> SmtpServer:
    inbox = Inbox()
    port = port or free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return SmtpServer("127.0.0.1", port, inbox, controller)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = start_smtp()
    yield server
    server.controller.stop()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def smtp_tls_server(tls_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    cert, key = tls_cert
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"billing" \
            and auth_data.password == b"s3cret/pass"
        return AuthResult(success=ok, handled=False)

    server = start_smtp(tls_context=ctx, require_starttls=True, authenticator=authenticate,
                        auth_required=True)
    yield server
    server.controller.stop()


# -- webhooks ------------------------------------------------------------------------------


@dataclass
class WebhookServer:
    secret: str
    plan: list[Any] = field(default_factory=list)  # per request: 200, 500, ("slow", secs)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/billing"


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    state = WebhookServer(secret="whsec_test_secret")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            signature = self.headers.get("Billing-Signature", "")
            with lock:
                step = state.plan.pop(0) if state.plan else 200
                state.requests.append({
                    "headers": dict(self.headers), "body": body,
                    "json": json.loads(body), "verified":
                    verify_signature(state.secret, signature, body),
                    "forged_rejected": not verify_signature("wrong", signature, body),
                })
            if isinstance(step, tuple) and step[0] == "slow":
                time.sleep(step[1])
                step = 200
            try:
                self.send_response(step)
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    state.httpd = httpd
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sms_provider(tmp_path: Path) -> FileSmsProvider:
    return FileSmsProvider(tmp_path / "sms.jsonl")


@pytest.fixture
def in_app() -> InAppChannel:
    return InAppChannel()
