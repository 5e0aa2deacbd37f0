"""The webhook endpoints of a customer's notifications (docs/messaging.md) over HTTP, admin
keys only: listed (oldest first, disabled ones too, never a secret), registered (the secret
shown once; a URL the channel would refuse is a 422 naming `url` and stores nothing) and
disabled (nothing more is posted to it); an unknown customer is a 404 naming it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from engine import messaging, sales
from engine.api import create_key
from engine.config import Settings
from engine.messaging import Notification, verify_signature
from engine.messaging.models import FINAL_STATUSES
from engine.system import build_system
from tests.api.conftest import Running, start_server
from tests.webhooks.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


def test_an_operator_lists_a_customers_notification_webhooks(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    r = admin.post("/v1/customers", json={"id": "cus_n", "email": "n@example.com", "name": "N", "country": "DE"})
    assert r.status_code == 201, r.text
    now = running.system.clock.now()
    with running.system.db.session() as s:  # no door registers them yet: the package does
        first = messaging.add_webhook_endpoint(s, "cus_n", "https://example.com/a", now=now)
        second = messaging.add_webhook_endpoint(s, "cus_n", "https://example.com/b", now=now + timedelta(seconds=1))
        messaging.disable_webhook_endpoint(s, first.id)
    r = admin.get("/v1/customers/cus_n/notification-webhooks")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "items": [
            {"id": first.id, "url": "https://example.com/a", "enabled": False},
            {"id": second.id, "url": "https://example.com/b", "enabled": True},
        ]
    }
    assert first.secret not in r.text and second.secret not in r.text
    assert product.get("/v1/customers/cus_n/notification-webhooks").status_code == 403
    missing = admin.get("/v1/customers/cus_nobody/notification-webhooks")
    assert missing.status_code == 404 and missing.json()["field"] == "customer_id", missing.text


# -- registered and disabled over HTTP -------------------------------------------------------------


@pytest.fixture
def private_ok(tmp_path: Path) -> Iterator[Running]:
    """A running engine whose deployment allows private targets (BILLING_WEBHOOKS_ALLOW_PRIVATE),
    so a receiver on this machine can take the notifications."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/api.db",
        test_clock="2026-11-01T09:00:00Z",
        webhooks_allow_private=True,
    )
    system = build_system(settings, automation=True)  # rules send notifications
    with system.db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "test", clock=system.clock)
        _, admin = create_key(s, "admin", now=system.clock.now())
        _, product = create_key(s, "product", now=system.clock.now())
    stop = threading.Event()
    system.start_workers(stop)
    server, thread, url = start_server(system)
    yield Running(system, url, admin, product)
    server.should_exit = True
    thread.join(10)
    stop.set()
    system.db.dispose()


def _invoice_issued_on_webhooks(admin: httpx.Client) -> None:
    """The shipped notification rules, with the issued invoice announced on the webhook channel."""
    text = (ROOT / "rules" / "notifications.yaml").read_text()
    changed = text.replace(
        "{template: invoice_issued, channels: [email]}", "{template: invoice_issued, channels: [webhook]}"
    )
    assert changed != text
    r = admin.post("/v1/publish", json={"documents": [{"file": "notifications.yaml", "text": changed}]})
    assert r.status_code == 201, r.text


def _webhook_notifications(running: Running, customer_id: str, count: int) -> list[Notification]:
    """The customer's webhook notifications once `count` of them are settled (sent, skipped...)."""
    deadline = time.monotonic() + 20
    while True:
        with running.system.db.session() as s:
            rows = list(
                s.scalars(
                    select(Notification).where(
                        Notification.customer_id == customer_id, Notification.channel == "webhook"
                    )
                )
            )
            s.expunge_all()
        if len([n for n in rows if n.status in FINAL_STATUSES]) >= count:
            return rows
        assert time.monotonic() < deadline, [(n.status, n.error) for n in rows]
        time.sleep(0.05)


def test_an_operator_registers_and_disables_a_notification_webhook_over_http(private_ok: Running) -> None:
    admin, product = private_ok.client(private_ok.admin), private_ok.client(private_ok.product)
    receiver = Receiver()
    try:
        _customer(admin, "cus_w")
        _invoice_issued_on_webhooks(admin)
        assert product.post("/v1/customers/cus_w/notification-webhooks", json={"url": receiver.url}).status_code == 403
        r = admin.post("/v1/customers/cus_w/notification-webhooks", json={"url": receiver.url})
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["url"] == receiver.url and made["enabled"] is True and made["secret"].startswith("whsec_")
        listed = admin.get("/v1/customers/cus_w/notification-webhooks")
        assert listed.json() == {"items": [{"id": made["id"], "url": receiver.url, "enabled": True}]}
        assert made["secret"] not in listed.text

        r = admin.post("/v1/subscriptions", json={"customer_id": "cus_w", "plan": "pro", "trial_days": 0})
        assert r.status_code == 201, r.text
        [sent] = _webhook_notifications(private_ok, "cus_w", 1)
        assert sent.status == "sent", sent.error
        [got] = receiver.received
        assert got.headers["billing-webhook-id"] == sent.id
        assert got.json()["type"] == "invoice_issued" and got.json()["customer_id"] == "cus_w"
        assert verify_signature(made["secret"], got.headers["billing-signature"], got.body)

        r = admin.delete(f"/v1/customers/cus_w/notification-webhooks/{made['id']}")
        assert r.status_code == 200, r.text
        assert r.json() == {"id": made["id"], "url": receiver.url, "enabled": False}
        assert admin.post("/v1/clock/advance", json={"by": "31d"}).status_code == 200  # the second
        rows = _webhook_notifications(private_ok, "cus_w", 2)
        after = [(n.status, n.error) for n in rows if n.id != sent.id]
        assert after == [("skipped", "customer has no webhook endpoint")], after
        time.sleep(0.5)  # a delivery on its way would have arrived
        assert len(receiver.received) == 1
    finally:
        receiver.stop()


def test_another_customers_endpoint_is_not_disabled(running: Running) -> None:
    admin = running.client(running.admin)
    _customer(admin, "cus_a")
    _customer(admin, "cus_b")
    made = admin.post("/v1/customers/cus_a/notification-webhooks", json={"url": "https://93.184.215.14/hooks"})
    assert made.status_code == 201, made.text
    wrong = admin.delete(f"/v1/customers/cus_b/notification-webhooks/{made.json()['id']}")
    assert wrong.status_code == 404 and wrong.json()["field"] == "endpoint_id", wrong.text
    nobody = admin.delete(f"/v1/customers/cus_nobody/notification-webhooks/{made.json()['id']}")
    assert nobody.status_code == 404 and nobody.json()["field"] == "customer_id", nobody.text
    listed = admin.get("/v1/customers/cus_a/notification-webhooks").json()["items"]
    assert listed == [{"id": made.json()["id"], "url": "https://93.184.215.14/hooks", "enabled": True}]


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",  # loopback
        "https://10.1.2.3/hooks",  # private
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://[::1]/hooks",
        "ftp://93.184.215.14/hooks",
        "file:///etc/passwd",
        "https://93.184.215.14/" + "a" * 2000,
    ],
)
def test_a_refused_url_is_a_422_naming_it_and_changes_nothing(running: Running, url: str) -> None:
    admin = running.client(running.admin)
    _customer(admin, "cus_r")
    r = admin.post("/v1/customers/cus_r/notification-webhooks", json={"url": url})
    assert r.status_code == 422 and r.json()["field"] == "url", r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert admin.get("/v1/customers/cus_r/notification-webhooks").json() == {"items": []}


def test_an_unknown_customer_gets_no_endpoint(running: Running) -> None:
    admin = running.client(running.admin)
    r = admin.post("/v1/customers/cus_nobody/notification-webhooks", json={"url": "https://93.184.215.14/hooks"})
    assert r.status_code == 404 and r.json()["field"] == "customer_id", r.text
    with running.system.db.session() as s:
        assert messaging.list_webhook_endpoints(s, "cus_nobody") == []


def _customer(admin: httpx.Client, cid: str) -> None:
    r = admin.post("/v1/customers", json={"id": cid, "email": f"{cid}@example.com", "name": cid, "country": "DE"})
    assert r.status_code == 201, r.text
