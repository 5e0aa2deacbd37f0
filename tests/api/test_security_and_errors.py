"""Authorization, problem bodies and bad input: the documented status, nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.sales.models import Customer, UsageRecord
from engine.store import OutboxEvent
from tests.api.conftest import Running


def test_health_needs_no_key_but_everything_else_does(running: Running) -> None:
    anon = running.client()
    assert anon.get("/health").json()["status"] == "ok"
    r = anon.post("/v1/access/check", json={"customer_id": "c", "feature": "api"})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "Authorization"
    assert running.client("bk_nope_nope").get("/v1/customers/x").status_code == 401


def test_the_schema_says_which_calls_need_a_key(running: Running) -> None:
    # What clients (and schemathesis' auth checks) read: a bearer key on every call but /health.
    schema = running.client().get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert schema["security"] == [{"apiKey": []}]
    unprotected = [f"{m.upper()} {p}" for p, item in schema["paths"].items() for m, op in item.items()
                   if op.get("security", schema["security"]) == []]
    assert unprotected == ["GET /health"]


def test_product_key_cannot_reach_admin_calls(running: Running) -> None:
    product = running.client(running.product)
    r = product.post("/v1/customers", json={"email": "a@b.c", "name": "A"})
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert product.post("/v1/access/check", json={"customer_id": "c", "feature": "api"}).status_code == 200


def test_revoked_key_stops_working(running: Running) -> None:
    admin = running.client(running.admin)
    created = admin.post("/v1/api-keys", json={"scope": "product"}).json()
    fresh = running.client(created["key"])
    assert fresh.post("/v1/access/check", json={"customer_id": "c", "feature": "api"}).status_code == 200
    assert admin.delete(f"/v1/api-keys/{created['id']}").status_code == 204
    assert fresh.post("/v1/access/check", json={"customer_id": "c", "feature": "api"}).status_code == 401


def _counts(running: Running) -> tuple[int, int]:
    with running.system.db.session() as s:
        return (
            s.scalar(select(func.count()).select_from(Customer)) or 0,
            s.scalar(select(func.count()).select_from(UsageRecord)) or 0,
        )


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/access/check", {"customer_id": "c", "feature": "api", "quantity": 0}, 422, "quantity"),
        ("/v1/access/check", {"customer_id": "c", "feature": "api", "quantity": "lots"}, 422, "quantity"),
        ("/v1/access/check", {"feature": "api"}, 422, "customer_id"),
        (
            "/v1/events",
            [
                {"id": "e1", "type": "api.request", "customer_id": "c", "time": "2026-11-01T00:00:00Z"},
                {"id": "e2", "type": "api.request", "customer_id": "c", "time": "2026-11-01T00:00:00"},
            ],
            422,
            "[1].time",
        ),
        ("/v1/events", {"type": "api.request", "customer_id": "c", "time": "2026-11-01T00:00:00Z"}, 422, "id"),
        ("/v1/customers", {"email": "a@b.c"}, 422, "name"),
        ("/v1/subscriptions", {"customer_id": "ghost", "plan": "pro"}, 404, "customer_id"),
    ],
)
def test_bad_input_gets_its_field_named_and_writes_nothing(
    running: Running, path: str, body: object, status: int, field: str
) -> None:
    before = _counts(running)
    r = running.client(running.admin).post(path, json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field
    assert "Traceback" not in r.text
    assert _counts(running) == before


def test_malformed_json_and_oversized_body(running: Running) -> None:
    admin = running.client(running.admin)
    r = admin.post("/v1/events", content=b'{"id": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"] == "malformed JSON"
    r = admin.post("/v1/events", content=b"[" + b" " * 2_000_000 + b"]", headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["field"] == "body"


def test_clock_advance_runs_the_billing_cycle(running: Running) -> None:
    admin = running.client(running.admin)
    admin.post("/v1/customers", json={"id": "cus_9", "email": "a@b.c", "name": "A"})
    admin.post("/v1/subscriptions", json={"customer_id": "cus_9", "plan": "pro", "quantity": 1})
    before = admin.get("/v1/customers/cus_9/invoices").json()["total"]
    r = admin.post("/v1/clock/advance", json={"by": "1mo"})
    assert r.status_code == 200, r.text
    assert r.json()["now"].startswith("2026-12-01")
    assert admin.get("/v1/customers/cus_9/invoices").json()["total"] == before + 1
    assert admin.post("/v1/clock/advance", json={"by": "soon"}).json()["field"] == "by"


def test_a_client_leaving_mid_check_writes_nothing_and_logs_no_error(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import socket
    import time
    from urllib.parse import urlsplit

    caplog.set_level(logging.INFO)
    where = urlsplit(running.url)
    with socket.create_connection((where.hostname, where.port)) as conn:
        conn.sendall(
            b"POST /v1/access/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {running.product}\r\nContent-Length: 4000\r\n\r\n".encode()
            + b'[{"customer_id": "nobody", "feature": "api"'
        )
    deadline = time.monotonic() + 10
    while not any("client left" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the server never noticed the client left"
        time.sleep(0.05)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    with running.system.db.read_session() as s:  # the check never ran: no denial recorded
        assert s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "access.denied")) == 0
