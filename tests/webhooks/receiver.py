"""A product's webhook receiver for the tests and the benchmark: a real HTTP server on a free
port that keeps every request, answers what the test says (200 or 500), can go down and come
back on the same port, and verifies signatures with the Standard Webhooks package."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)

    def verify(self, secret: str) -> Any:
        """The body, if the signature holds for `secret` (raises otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self, answer: int = 200) -> None:
        self.port = free_port()
        self.answer = answer
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a product's server would

            def setup(self) -> None:
                super().setup()
                with receiver.lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                super().finish()
                with receiver.lock:
                    receiver._connections.discard(self.connection)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = receiver.answer
                if status < 300:
                    with receiver.lock:
                        receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """An outage: nothing listens on the port until `start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:  # kept-alive connections go down too
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._connections.clear()

    def unique(self) -> dict[str, Received]:
        """What the product keeps after dropping copies by `webhook-id` (first copy wins)."""
        with self.lock:
            out: dict[str, Received] = {}
            for r in self.received:
                out.setdefault(r.id, r)
            return out

    def wait_for(self, ids: set[str], timeout: float = 20.0) -> dict[str, Received]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.unique()
            if ids <= set(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"not received within {timeout} s: {sorted(ids - set(got))}")
            time.sleep(0.05)
