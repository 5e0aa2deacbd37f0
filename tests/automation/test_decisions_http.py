"""GET /v1/customers/{id}/decisions on a whole engine (sandbox PSP, real SMTP, the shipped
dunning and notification rules): why the customer was charged, dunned and messaged."""

from __future__ import annotations

from datetime import timedelta

import httpx

from engine.api import create_app, create_key
from engine.system import System
from tests.api.conftest import serve
from tests.automation.conftest import FAILING_CARD, START, new_customer


def test_decisions_explain_a_failed_charge_its_retry_and_the_emails(engine_system: System) -> None:
    system = engine_system
    invoice_id = new_customer(system, "cus_why", FAILING_CARD)
    system.advance_to(START + timedelta(days=1, hours=23))  # attempt 2 fails too
    with system.db.session() as s:
        _, admin = create_key(s, "admin", now=system.clock.now())
    with serve(create_app(system.api_context())) as url:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        items = client.get("/v1/customers/cus_why/decisions", params={"limit": 100}).json()["items"]
        charges = client.get("/v1/customers/cus_why/decisions", params={"kind": "charge"}).json()["items"]

    kinds = {i["kind"] for i in items}
    assert {"charge", "dunning", "message"} <= kinds, items
    assert {i["kind"] for i in charges} == {"charge"}
    failed = [i for i in charges if i["subject"] == invoice_id and i["outcome"] == "failed"]
    assert len(failed) >= 2 and all(i["event_id"] for i in failed)
    retries = [i for i in items if i["kind"] == "dunning" and i["outcome"] == "retry_payment"]
    assert retries and all(i["rule"] and i["rule"].startswith("dunning/") for i in retries)
    sent = [i for i in items if i["kind"] == "message" and i["outcome"] == "sent"]
    assert sent and all(i["rule"] for i in sent)
    times = [i["time"] for i in items]
    assert times == sorted(times, reverse=True)  # newest first
