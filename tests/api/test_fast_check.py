"""The access check's fast path (engine/api/fast_check.py) over real HTTP: it serves the
common check, and every answer it gives, or leaves to the route, is the route's own."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from engine import sales
from engine.api import create_app
from engine.api.app import EngineAPI
from engine.config import Settings
from engine.store import OutboxEvent
from engine.system import System
from tests.api.conftest import keyed_system, serve

Engine = tuple[System, EngineAPI, str, str, str]  # the system, its app, URL, product and admin keys


class Served:
    """Counts the requests the fast path answered itself."""

    def __init__(self, app: EngineAPI) -> None:
        assert app.fast_check is not None
        self.count = 0
        answer = app.fast_check._answer

        def counted(authorization: bytes, body: bytes) -> bytes | None:
            out = answer(authorization, body)
            self.count += out is not None
            return out

        app.fast_check._answer = counted  # type: ignore[method-assign]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    # Denials buffered, as the engine runs by default: the fast path serves them too.
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/fast.db",
        test_clock="2026-11-01T09:00:00Z",
        access_denial_buffer_ms=20,
        max_body_bytes=2000,
    )
    system, admin, product = keyed_system(settings)
    with system.db.session() as s:
        for cid, plan in (("cus_free", "free"), ("cus_pro", "pro")):
            sales.create_customer(s, {"id": cid, "name": cid, "email": f"{cid}@x.io"}, clock=system.clock)
            sales.create_subscription(s, cid, plan, clock=system.clock)
    system.drain()
    stop = threading.Event()
    system.start_workers(stop)
    app = create_app(system.api_context())
    with serve(app) as url:
        yield system, app, url, product, admin
    stop.set()
    system.db.dispose()


def _post(url: str, key: str | None, content: bytes | Iterator[bytes]) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(f"{url}/v1/access/check", content=content, headers=headers, timeout=30)


def test_every_answer_is_the_routes_own(engine: Engine) -> None:
    system, app, url, product, admin = engine
    requests: list[tuple[str | None, bytes]] = [
        (product, b'{"customer_id": "cus_pro", "feature": "api"}'),
        (admin, b'{"customer_id": "cus_pro", "feature": "projects", "quantity": "2", "in_use": 1}'),
        (product, b'{"customer_id": "cus_free", "feature": "sso"}'),  # denied, with an offer
        (product, b'{"customer_id": "cus_nobody", "feature": "api"}'),  # no_customer
        (product, b'{"customer_id": "cus_pro", "feature": "teleport"}'),  # unknown feature: 404
        (product, b'[{"customer_id": "cus_pro", "feature": "api"}, {"customer_id": "cus_free", "feature": "sso"}]'),
        (product, b'{"customer_id": "cus_pro", "feature": "api", "quantity": 0}'),
        (product, b'{"customer_id": "cus_pro", "feature": "api", "colour": "red"}'),
        (product, b'{"customer_id": "cus_pro", "feature": '),  # malformed JSON
        (product, b'{"customer_id": "cus_pro", "feature": "api", "pad": "' + b"x" * 3000 + b'"}'),  # over the limit
        (None, b'{"customer_id": "cus_pro", "feature": "api"}'),
        ("bk_nope_nope", b'{"customer_id": "cus_pro", "feature": "api"}'),
    ]
    for key in (product, admin):  # a key's first call is verified against the store, by the route
        assert _post(url, key, requests[0][1]).status_code == 200
    served = Served(app)
    fast = [_post(url, key, body) for key, body in requests]
    # The first four need nothing but memory: the fast path answered them; the rest it left.
    assert served.count == 4
    assert [r.status_code for r in fast] == [200, 200, 200, 200, 404, 200, 422, 422, 400, 413, 401, 401]
    assert fast[2].json()["offer"] == {"plan": "pro", "name": "Pro"}
    assert fast[3].json()["reason"] == "no_customer"
    assert fast[8].json()["detail"] == "malformed JSON"

    app.fast_check = None  # the route alone
    slow = [_post(url, key, body) for key, body in requests]
    for key_body, a, b in zip(requests, fast, slow, strict=True):
        assert (a.status_code, a.headers["content-type"], a.content) == (
            b.status_code,
            b.headers["content-type"],
            b.content,
        ), key_body


def test_a_body_in_chunks_or_without_length_is_read_whole(engine: Engine) -> None:
    system, app, url, product, admin = engine
    _post(url, product, b'{"customer_id": "cus_pro", "feature": "api"}')
    served = Served(app)
    parts = [b'{"customer_id": ', b'"cus_pro", "feature"', b': "sso"}']
    # No Content-Length (chunked): the body limit's to count, so the route answers.
    r = _post(url, product, iter(parts))
    assert r.status_code == 200 and r.json()["allowed"] is True
    assert served.count == 0
    # Declared length, the body arriving in pieces (separate packets, so separate reads of
    # the server): the fast path joins them.
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/access/check HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {product}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {sum(map(len, parts))}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head.encode())
        for part in parts:
            time.sleep(0.05)
            sock.sendall(part)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status, _, payload = raw.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200")
    r = httpx.Response(200, content=payload)
    assert r.status_code == 200 and r.json()["feature"] == "sso"
    assert served.count == 1


def test_each_denial_is_published_once_whichever_path_served_it(engine: Engine) -> None:
    system, app, url, product, admin = engine
    served = Served(app)
    body = b'{"customer_id": "cus_free", "feature": "sso"}'
    _post(url, product, b'{"customer_id": "cus_pro", "feature": "api"}')
    system.access.invalidate("cus_free")  # the first check loads the customer, inline
    answers = [_post(url, product, body).json() for _ in range(5)]
    answers.append(_post(url, product, b"[" + body + b"]").json()[0])  # a batch: the route
    assert served.count == 5
    assert all(a["allowed"] is False and a["reason"] == "not_in_plan" for a in answers)
    system.access.flush_denials()
    with system.db.session() as s:
        denied = list(s.scalars(select(OutboxEvent).where(OutboxEvent.type == "access.denied")))
    assert sum(e.properties["count"] for e in denied) == 6
    assert {e.customer_id for e in denied} == {"cus_free"}


def test_a_threshold_to_announce_goes_to_the_route_and_is_written_once(engine: Engine) -> None:
    system, app, url, product, admin = engine
    events = [
        {"id": f"e{i}", "type": "api.request", "customer_id": "cus_free", "time": "2026-11-01T10:00:00Z"}
        for i in range(800)
    ]
    with system.db.session() as s:
        sales.ingest_events(s, events, clock=system.clock)
    _post(url, product, b'{"customer_id": "cus_pro", "feature": "api"}')
    system.access.invalidate("cus_free")
    served = Served(app)
    body = b'{"customer_id": "cus_free", "feature": "api"}'
    first, second = _post(url, product, body).json(), _post(url, product, body).json()
    assert (first["used"], first["remaining"], second["used"]) == (800, 200, 800)
    # The first check had 80 % to announce: the route wrote it; the second needed nothing.
    assert served.count == 1
    with system.db.session() as s:
        thresholds = list(s.scalars(select(OutboxEvent).where(OutboxEvent.type == "usage.threshold_reached")))
    assert [e.properties["threshold"] for e in thresholds] == [80]
