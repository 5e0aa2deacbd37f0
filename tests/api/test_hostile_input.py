"""Hostile and careless input over HTTP (issue 16): every number, time and page the API takes
has a documented range; outside it the answer is a 422 naming the field, never a 500, and
nothing is written. Each case is what a fuzzer or a careless product sent."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.sales.models import Subscription, UsageRecord
from engine.store import OutboxEvent
from tests.api.conftest import Running


def _event(**over: Any) -> dict[str, Any]:
    return {"id": "evt_h", "type": "api.request", "customer_id": "cus_h", "time": "2026-11-01T10:00:00Z", **over}


def _gpu(hours: Any) -> dict[str, Any]:
    return {"plan": "pro", "events": [{"id": "g", "type": "gpu.used", "time": "2026-11-02T00:00:00Z",
                                       "properties": {"hours": hours, "region": "eu"}}]}


HUGE = "1E+999999999"
CASES: list[tuple[str, str, Any, str]] = [
    ("POST", "/v1/access/check", {"customer_id": "cus_h", "feature": "api", "quantity": HUGE}, "quantity"),
    ("POST", "/v1/access/check", {"customer_id": "cus_h", "feature": "api", "quantity": 1.5}, "quantity"),
    ("POST", "/v1/access/check", {"customer_id": "cus_h", "feature": "api", "quantity": "9" * 5000}, "quantity"),
    ("POST", "/v1/access/check", {"customer_id": "cus_h", "feature": "api", "in_use": "-1"}, "in_use"),
    ("POST", "/v1/quotes", {"plan": "pro", "quantity": "1e400"}, "quantity"),
    ("POST", "/v1/quotes", {"plan": "pro", "quantity": "9" * 30}, "quantity"),
    ("POST", "/v1/quotes", {"plan": "pro", "quantity": "9" * 4000}, "quantity"),
    ("POST", "/v1/quotes", {"plan": "pro", "quantity": HUGE}, "quantity"),
    ("POST", "/v1/quotes", {"plan": "pro", "usage": {"api_calls": "1e400"}}, "usage.api_calls"),
    ("POST", "/v1/quotes", {"plan": "pro", "usage": {"api_calls": "9" * 30}}, "usage.api_calls"),
    ("POST", "/v1/quotes", _gpu(HUGE), "events[0].properties.hours"),
    ("POST", "/v1/quotes", _gpu("9" * 35), "events[0].properties.hours"),
    ("POST", "/v1/quotes", {"plan": "pro", "period": "0001-01-01/9999-12-31"}, "period"),
    ("POST", "/v1/events", _event(time="0001-01-01T00:00:00+14:00"), "time"),
    ("POST", "/v1/events", _event(time="9999-01-01T00:00:00Z"), "time"),
    ("POST", "/v1/events", _event(time=1_700_000_000), "time"),
    ("POST", "/v1/events", _event(properties={"x": float("nan")}), "properties"),
    ("POST", "/v1/events", _event(properties={"x": float("inf")}), "properties"),
    ("POST", "/v1/subscriptions", {"customer_id": "cus_h", "plan": "pro", "quantity": "1e400"}, "quantity"),
    ("POST", "/v1/subscriptions", {"customer_id": "cus_h", "plan": "pro", "quantity": "9" * 30}, "quantity"),
    ("POST", "/v1/subscriptions", {"customer_id": "cus_h", "plan": "pro", "quantity": "1.5"}, "quantity"),
    ("POST", "/v1/subscriptions", {"customer_id": "cus_h", "plan": "pro", "trial_days": 10**12}, "trial_days"),
    ("GET", "/v1/customers/cus_h/invoices?page=99999999999999999999", None, "page"),
    ("GET", "/v1/customers/cus_h/notifications?before=2026-11-01T00:00:00", None, "before"),
    ("GET", "/v1/customers/cus_h/notifications?before=0.5", None, "before"),
]


def _counts(running: Running) -> tuple[int, int, int]:
    with running.system.db.session() as s:
        return (s.scalar(select(func.count()).select_from(UsageRecord)) or 0,
                s.scalar(select(func.count()).select_from(Subscription)) or 0,
                s.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


def test_every_out_of_range_input_is_a_422_naming_its_field_and_writes_nothing(running: Running) -> None:
    admin = running.client(running.admin)
    admin.post("/v1/customers", json={"id": "cus_h", "email": "h@example.com", "name": "H"})
    before = _counts(running)
    wrong = []
    for method, path, body, field in CASES:
        started = time.monotonic()
        content = None if body is None else json.dumps(body, allow_nan=True)
        r = admin.request(method, path, content=content, headers={"Content-Type": "application/json"})
        took = time.monotonic() - started
        got = (r.status_code, r.json().get("field") if r.headers["content-type"].endswith("json") else None)
        if got != (422, field) or took > 2:
            wrong.append((method, path, str(body)[:80], got, round(took, 2)))
    assert wrong == []
    assert _counts(running) == before


def test_a_405_says_which_methods_are_allowed(running: Running) -> None:
    r = running.client(running.admin).put("/v1/customers")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.headers["content-type"].startswith("application/problem+json")


def test_a_405_names_every_method_of_a_path_served_by_several_routes(running: Running) -> None:
    # GET and POST on one path are two routes; the Allow header lists both (RFC 9110).
    admin = running.client(running.admin)
    for method in ("OPTIONS", "PUT", "PATCH"):
        r = admin.request(method, "/v1/customers/cus_x/payment_methods")
        assert (r.status_code, r.headers.get("allow")) == (405, "GET, POST"), method


@pytest.mark.parametrize("quantity", [1, "2", "0.5", "999999999999", "1.000000000001"])
def test_quantities_inside_the_range_are_answered(running: Running, quantity: Any) -> None:
    admin = running.client(running.admin)
    admin.post("/v1/customers", json={"id": "cus_h", "email": "h@example.com", "name": "H"})
    r = running.client(running.product).post(
        "/v1/access/check", json={"customer_id": "cus_h", "feature": "api", "quantity": quantity})
    assert r.status_code == 200, r.text
