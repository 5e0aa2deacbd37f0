"""Hard and soft declines through HTTP, with the shipped rules (rules/dunning.yaml and
rules/notifications.yaml), the sandbox PSP and a real SMTP server, on a test clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.api import create_app, create_key
from engine.automation import ScheduledJob
from engine.system import System
from tests.automation.conftest import FAILING_CARD, GOOD_CARD, Inbox, Server, make_system

HARD_DECLINE = "4000000000000002"  # 05 generic decline, not retryable
METHOD_NEEDED = "Please add another payment method for invoice INV-2026-000001"
FAILED = "Payment for invoice INV-2026-000001 failed"


@pytest.fixture
def http(tmp_path: Any, psp: Server, inbox: tuple[Inbox, str]) -> Iterator[tuple[System, TestClient]]:
    handler, smtp_url = inbox
    system = make_system(tmp_path, psp.url, smtp_url)
    handler.clock = system.test_clock
    with system.db.session() as s:
        _, admin = create_key(s, "admin", now=datetime(2026, 3, 1, tzinfo=UTC))
    with TestClient(create_app(system.api_context()), headers={"Authorization": f"Bearer {admin}"}) as client:
        yield system, client
    system.db.dispose()


def signup(system: System, client: TestClient, cid: str, card: str) -> str:
    r = client.post("/v1/customers", json={"id": cid, "email": f"{cid}@example.com", "name": cid, "country": "US"})
    assert r.status_code == 201, r.text
    r = client.post("/v1/subscriptions", json={"customer_id": cid, "plan": "basic",
                                               "payment_method": {"type": "card", "token": card}})
    assert r.status_code == 201, r.text
    advance(client, "1h")  # the first invoice is collected and its rules have run
    return str(client.get(f"/v1/customers/{cid}/invoices").json()["items"][0]["id"])


def advance(client: TestClient, by: str) -> None:
    r = client.post("/v1/clock/advance", json={"by": by})
    assert r.status_code == 200, r.text


def subjects(inbox: Inbox) -> list[str]:
    return [s for _day, s in inbox.subjects()]


def test_a_hard_decline_is_not_retried_and_asks_once_for_another_method(
    http: tuple[System, TestClient], inbox: tuple[Inbox, str]
) -> None:
    system, client = http
    invoice_id = signup(system, client, "cus_hard", HARD_DECLINE)
    advance(client, "8d")
    got = subjects(inbox[0])
    assert got.count(METHOD_NEEDED) == 1
    assert FAILED not in got
    assert not any(s.startswith("We will retry") for s in got)
    with system.db.session() as s:
        assert s.scalars(select(ScheduledJob)).all() == []  # no retry was ever scheduled
    attempts = client.get(f"/v1/invoices/{invoice_id}").json()["collection"]["payments"]
    assert [(p["status"], p["decline_code"], p["retryable"]) for p in attempts] == [
        ("failed", "generic_decline", False)]

    # The customer adds a card over HTTP: the open invoice is collected at once.
    r = client.post("/v1/customers/cus_hard/payment_methods", json={"type": "card", "token": GOOD_CARD})
    assert r.status_code == 201, r.text
    assert client.get(f"/v1/invoices/{invoice_id}").json()["collection"]["status"] == "paid"
    system.drain()  # what the workers do: sales hears payment.succeeded
    invoice = client.get(f"/v1/invoices/{invoice_id}").json()
    assert invoice["status"] == "paid"
    assert [p["status"] for p in invoice["collection"]["payments"]] == ["failed", "succeeded"]


def test_a_soft_decline_is_retried_and_recovers(http: tuple[System, TestClient], inbox: tuple[Inbox, str]) -> None:
    system, client = http
    invoice_id = signup(system, client, "cus_soft", FAILING_CARD)
    advance(client, "1d")  # the retry of day 1 fails too
    got = subjects(inbox[0])
    assert got.count(FAILED) == 2 and METHOD_NEEDED not in got
    # A working card arrives; the next scheduled retry (day 3) would take it, but attaching
    # collects now.
    client.post("/v1/customers/cus_soft/payment_methods", json={"type": "card", "token": GOOD_CARD})
    system.drain()
    assert client.get(f"/v1/invoices/{invoice_id}").json()["status"] == "paid"
    advance(client, "4d")
    assert subjects(inbox[0]).count(FAILED) == 2  # nothing failed after recovery
