"""The OpenAPI contract says what the server takes (issue 16): a value the schema allows is
accepted, or refused for what is stored (404 for an unknown plan, coupon, metric or provider;
409 for a clash with stored state), never with a 422; a value the server refuses with a 422
is one the schema refuses too. Each case is a request schemathesis found the two disagreeing
on, checked here as a client would: against /openapi.json, then over HTTP."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from tests.api.conftest import Running


def _schema_allows(running: Running, path: str, body: Any) -> bool:
    """Whether the request body schema of POST `path` in /openapi.json allows `body`, read as
    JSON Schema 2020-12 reads it (ECMA 262 patterns: `$` is the end of the text)."""
    doc = running.client().get("/openapi.json").json()
    body_schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return bool(jsonschema_rs.Draft202012Validator({**body_schema, "components": doc["components"]}).is_valid(body))


def _customer(running: Running, cid: str, **extra: Any) -> None:
    r = running.client(running.admin).post("/v1/customers", json={"id": cid, "email": f"{cid}@example.com",
                                                                  "name": cid, **extra})
    assert r.status_code == 201, r.text


REFUSED = [
    # (path as documented, path called, body, the field the 422 names)
    ("/v1/customers", "/v1/customers", {"email": "ada at example", "name": "A"}, "email"),
    ("/v1/customers", "/v1/customers", {"email": "a\u2003b@example.com", "name": "A"}, "email"),
    ("/v1/customers", "/v1/customers", {"email": "a@b.c", "name": "A", "country": "Deutschland"}, "country"),
    ("/v1/customers", "/v1/customers", {"email": "a@b.c", "name": "A", "currency": "XYZ"}, "currency"),
    ("/v1/customers", "/v1/customers", {"email": "a@b.c", "name": "A", "timezone": "Mars/Olympus"}, "timezone"),
    ("/v1/customers", "/v1/customers", {"email": "a@b.c", "name": "A", "phone": "+ 12 "}, "phone"),
    ("/v1/customers", "/v1/customers", {"email": "a@b.c", "name": "A", "preferred_channels": ["fax"]},
     "preferred_channels[0]"),
    ("/v1/subscriptions", "/v1/subscriptions", {"customer_id": "", "plan": "pro"}, "customer_id"),
    ("/v1/subscriptions", "/v1/subscriptions", {"customer_id": "cus_c", "plan": ""}, "plan"),
    ("/v1/subscriptions", "/v1/subscriptions", {"customer_id": "cus_c", "plan": "pro", "quantity": 10**9 + 1},
     "quantity"),
    ("/v1/subscriptions", "/v1/subscriptions", {"customer_id": "cus_c", "plan": "pro", "trial_days": "5"},
     "trial_days"),
    ("/v1/subscriptions", "/v1/subscriptions",
     {"customer_id": "cus_c", "plan": "pro", "payment_method": {"type": "card"}}, "payment_method.token"),
    ("/v1/subscriptions/{subscription_id}/change", "/v1/subscriptions/sub_x/change", {"plan": None}, "plan"),
    ("/v1/clock/advance", "/v1/clock/advance", {"by": None}, "to"),
    ("/v1/clock/advance", "/v1/clock/advance", {"by": "4y"}, "by"),
    ("/v1/clock/advance", "/v1/clock/advance", {"by": "1099d"}, "by"),
    ("/v1/clock/advance", "/v1/clock/advance", {"by": "3d\n"}, "by"),
    ("/v1/quotes", "/v1/quotes", {"subscription_id": None}, "plan"),
    ("/v1/quotes", "/v1/quotes", {"plan": "pro", "rules": 0}, "rules"),
    ("/v1/quotes", "/v1/quotes", {"plan": "pro", "usage": {"api calls": "1"}}, "usage.api calls"),
    ("/v1/quotes", "/v1/quotes", {"plan": "pro", "events": [{"id": "e1"}]}, "events[0].type"),
    ("/v1/quotes", "/v1/quotes", {"plan": "pro", "period": "2026-11-01 / 2026-12-01"}, "period"),
    ("/v1/customers/{customer_id}/payment_methods", "/v1/customers/cus_c/payment_methods", {}, "token"),
]


@pytest.mark.parametrize(("documented", "path", "body", "field"), REFUSED, ids=[f"{c[1]} {c[3]}" for c in REFUSED])
def test_what_the_server_refuses_the_schema_refuses(
    running: Running, documented: str, path: str, body: Any, field: str
) -> None:
    _customer(running, "cus_c")
    assert not _schema_allows(running, documented, body)
    r = running.client(running.admin).post(path, json=body)
    assert (r.status_code, r.json().get("field")) == (422, field), r.text


def test_values_the_schema_lists_are_accepted(running: Running) -> None:
    body = {"email": "ada@example.com", "name": "Ada", "country": "ch", "currency": "CHF",
            "timezone": "Europe/Zurich", "phone": "+41 44 123 45 67", "preferred_channels": ["email", "in_app"]}
    assert _schema_allows(running, "/v1/customers", body)
    r = running.client(running.admin).post("/v1/customers", json=body)
    assert r.status_code == 201, r.text
    assert (r.json()["country"], r.json()["currency"], r.json()["timezone"]) == ("CH", "CHF", "Europe/Zurich")


STORED = [
    # (path as documented, path called, body, status, field): valid in shape, refused for what is stored
    ("/v1/subscriptions", "/v1/subscriptions", {"customer_id": "cus_c", "plan": "enterprise", "coupon": "WELCOME20"},
     409, "coupon"),
    ("/v1/subscriptions", "/v1/subscriptions", {"customer_id": "cus_chf", "plan": "pro"}, 409, "plan"),
    ("/v1/quotes", "/v1/quotes", {"plan": "pro", "coupon": "NOPE"}, 404, "coupon"),
    ("/v1/quotes", "/v1/quotes", {"plan": "pro", "usage": {"clicks": "5"}}, 404, "usage"),
    ("/v1/quotes", "/v1/quotes", {"plan": "pro", "coupon": "WELCOME20", "period": "2027-03-01/2027-04-01"},
     409, "coupon"),
    ("/v1/clock/advance", "/v1/clock/advance", {"to": "2026-01-01T00:00:00Z"}, 409, "to"),
    ("/v1/clock/advance", "/v1/clock/advance", {"to": "2199-01-01T00:00:00Z"}, 409, "to"),
    ("/v1/customers/{customer_id}/payment_methods", "/v1/customers/cus_c/payment_methods",
     {"type": "card", "token": "4242424242424242"}, 404, "provider"),
]


@pytest.mark.parametrize(("documented", "path", "body", "status", "field"), STORED,
                         ids=[f"{c[1]} {c[4]} {c[3]}" for c in STORED])
def test_a_valid_request_refused_for_what_is_stored_is_a_404_or_409(
    running: Running, documented: str, path: str, body: Any, status: int, field: str
) -> None:
    _customer(running, "cus_c")
    _customer(running, "cus_chf", currency="CHF")
    assert _schema_allows(running, documented, body)
    r = running.client(running.admin).post(path, json=body)
    assert (r.status_code, r.json().get("field")) == (status, field), r.text


def test_a_change_to_the_quantity_a_subscription_has_is_a_409(running: Running) -> None:
    _customer(running, "cus_c")
    admin = running.client(running.admin)
    sub = admin.post("/v1/subscriptions", json={"customer_id": "cus_c", "plan": "pro", "quantity": 2}).json()
    r = admin.post(f"/v1/subscriptions/{sub['id']}/change", json={"quantity": 2})
    assert (r.status_code, r.json()["field"]) == (409, "quantity")
