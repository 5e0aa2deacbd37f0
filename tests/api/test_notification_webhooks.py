"""The webhook endpoints of a customer's notifications (docs/messaging.md), listed for an
operator over HTTP: oldest first, disabled ones too, never a secret; admin keys only; an
unknown customer is a 404 naming it."""

from __future__ import annotations

from datetime import timedelta

from engine import messaging
from tests.api.conftest import Running


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
