"""Property-based API testing from the OpenAPI schema: no 5xx and no response that breaks the
schema, whatever the input (schemathesis over real HTTP). Acceptance of every schema-valid
value is not asked: an unknown coupon or an impossible date is valid JSON Schema and still
a 422 with its field named.

schemathesis' pytest plugin does not run under pytest 9, so its per-operation Hypothesis
strategies are driven here directly."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Running

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


def test_api_never_fails_and_keeps_its_schema(running: Running) -> None:
    admin = running.client(running.admin)
    admin.post("/v1/customers", json={"id": "cus_42", "email": "a@b.c", "name": "A"})
    admin.post("/v1/subscriptions", json={"customer_id": "cus_42", "plan": "pro"})
    schema = schemathesis.openapi.from_url(f"{running.url}/openapi.json")
    headers = {"Authorization": f"Bearer {running.admin}"}
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/v1/api-keys/{key_id}":
            continue  # revoking random keys is covered by the security tests

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) >= 15, tested
