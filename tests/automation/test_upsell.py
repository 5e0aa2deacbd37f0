"""The upsell loop over real HTTP: a denied feature (not in the plan, or over its quota)
becomes, through rules/notifications.yaml, an in-app offer naming the plan to upgrade to,
and an email unless the customer opted out of that channel."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from engine import messaging
from engine.api import create_app, create_key
from engine.system import System
from tests.automation.conftest import START, Inbox, Server, make_system


@pytest.fixture
def served(tmp_path: Any, psp: Server, inbox: tuple[Inbox, str]) -> Iterator[tuple[System, httpx.Client]]:
    handler, smtp_url = inbox
    system = make_system(tmp_path, psp.url, smtp_url)
    handler.clock = system.test_clock
    with system.db.session() as s:
        _, admin = create_key(s, "admin", now=START)
    stop = threading.Event()
    system.start_workers(stop)
    server = Server(create_app(system.api_context())).start()
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    yield system, client
    client.close()
    server.stop()
    stop.set()
    system.db.dispose()


def feed(client: httpx.Client, cid: str, want: int) -> list[dict[str, Any]]:
    """The in-app feed, once `want` entries are there (the bus works in the background;
    advancing the clock runs delivery)."""
    deadline = time.monotonic() + 15
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        r = client.post("/v1/clock/advance", json={"by": "1m"})
        assert r.status_code == 200, r.text
        r = client.get(f"/v1/customers/{cid}/notifications", params={"channel": "in_app"})
        assert r.status_code == 200, r.text
        items = [i for i in r.json()["items"] if i["template"] == "upgrade_offer"]
        if len(items) >= want:
            return items
        time.sleep(0.1)
    return items


def subscribe(client: httpx.Client, cid: str) -> None:
    r = client.post("/v1/customers", json={"id": cid, "email": f"{cid}@example.com",
                                           "name": "Grace Hopper", "country": "US"})
    assert r.status_code == 201, r.text
    r = client.post("/v1/subscriptions", json={"customer_id": cid, "plan": "basic",
                                               "payment_method": "4242424242424242"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("feature", "quantity", "reason"), [
    ("sso", None, "not_in_plan"), ("exports", 3, "quota_exceeded")])
def test_denial_becomes_an_offer_in_the_feed_and_by_email(
        served: tuple[System, httpx.Client], inbox: tuple[Inbox, str], feature: str,
        quantity: int | None, reason: str) -> None:
    system, client = served
    subscribe(client, "cus_up")
    body: dict[str, Any] = {"customer_id": "cus_up", "feature": feature}
    if quantity is not None:
        body["quantity"] = quantity
    # The product asks three times; the customer gets one offer.
    for _ in range(3):
        r = client.post("/v1/access/check", json=body)
        assert r.status_code == 200, r.text
        decision = r.json()
        assert decision["allowed"] is False and decision["reason"] == reason
        assert decision["offer"]["plan"] == "team"
    items = feed(client, "cus_up", 1)
    assert len(items) == 1, items
    assert items[0]["title"] == "Upgrade to Team"
    assert "upgrade?plan=team" in items[0]["action_url"]
    time.sleep(0.3)
    assert len(feed(client, "cus_up", 1)) == 1  # still one
    offers = [m for m in inbox[0].mails if "Team" in m.subject]
    assert len(offers) == 1 and offers[0].to == "cus_up@example.com"
    assert "upgrade?plan=team" in offers[0].text


def test_opted_out_channel_is_skipped(served: tuple[System, httpx.Client],
                                      inbox: tuple[Inbox, str]) -> None:
    system, client = served
    subscribe(client, "cus_quiet")
    with system.db.session() as s:
        messaging.set_preferences(s, "cus_quiet", now=START, opted_out_channels=["email"])
    r = client.post("/v1/access/check", json={"customer_id": "cus_quiet", "feature": "sso"})
    assert r.json()["allowed"] is False
    items = feed(client, "cus_quiet", 1)
    assert len(items) == 1 and "Team" in items[0]["title"]
    with system.db.session() as s:
        rows = [n for n in messaging.list_notifications(s, customer_id="cus_quiet")
                if n["template"] == "upgrade_offer"]
    by_channel = {n["channel"]: n for n in rows}
    assert by_channel["email"]["status"] == "skipped"
    assert "opted out" in by_channel["email"]["error"]
    assert by_channel["in_app"]["status"] == "sent"
    assert not [m for m in inbox[0].mails if "Team" in m.subject]
    # Transactional mail still reaches the customer (the invoice cannot be turned off).
    assert any("Invoice" in m.subject for m in inbox[0].mails if m.to == "cus_quiet@example.com")
