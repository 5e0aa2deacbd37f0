"""The README's product journey through engine.client (issue 19): signup, a subscription with a
card, usage events, access checks through the AccessCache, the invoices paid, on the shared
test clock; the ledger check follows (the `engine` fixture). Other journeys move the shared clock:
when it stands in November or December 2026 the shipped launch promotion takes 20 % off the Pro
base fee, so the first invoice has one of two hand-computed totals, told apart by its discounts."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

from engine.client import AccessCache, BillingClient, Event
from tests.journeys.harness import Engine

CARD_OK = "4242424242424242"
LAUNCH = "rule:promotions/launch-2026"


def first_total(invoice: object) -> Decimal:
    """Pro base 49.00 + 2 seats x 10.00 = 69.00, + 19 % = 82.11; under the launch promotion
    (49.00 - 9.80) + 20.00 = 59.20, + 19 % = 70.448, rounded half-up to 70.45."""
    discounts = (getattr(invoice, "model_extra", None) or {}).get("discounts", [])
    return Decimal("70.45") if any(d["source"] == LAUNCH for d in discounts) else Decimal("82.11")


def key(client: object) -> str:
    return str(client.headers["authorization"]).removeprefix("Bearer ")  # type: ignore[attr-defined]


def test_the_readme_product_journey_with_the_client(engine: Engine) -> None:
    admin = BillingClient(engine.url, key(engine.admin), timeout=60)
    product = BillingClient(engine.url, key(engine.product), batch_size=50)
    cid = f"cus_client_{secrets.token_hex(3)}"

    customer = admin.customers.create(f"{cid}@example.com", "Client Ltd", id=cid, country="DE")
    engine.created.append(customer.id)
    cache = AccessCache(product.access, policies={"api": "open"}, default="closed")
    assert cache.check(cid, "sso").reason == "subscription_inactive"

    sub = admin.subscriptions.create(cid, "pro", quantity=2, trial_days=0,
                                     payment_method={"type": "card", "token": CARD_OK})
    assert sub.status == "active"
    [method] = admin.payment_methods.list(cid)
    assert (method.last4, method.default) == ("4242", True)
    cache.on_event({"type": "subscription.created", "customer_id": cid})  # as the engine's webhook says
    assert cache.allowed(cid, "sso")

    now = datetime.fromisoformat(engine.now())
    report = product.events.send(Event("api.request", cid, {"endpoint": "/v1/search"}, time=now) for _ in range(120))
    assert (report.received, report.accepted, report.duplicates) == (120, 120, 0)
    cache.on_event({"type": "usage.recorded", "customer_id": None, "properties": {"customers": [cid]}})
    calls = cache.check(cid, "api", 10)
    assert (calls.allowed, calls.used, calls.limit, calls.source) == (True, 120, 100000, "engine")

    engine.advance("1h")
    [first] = admin.customers.invoices(cid)
    first = admin.invoices.get(first.id)
    assert first.status == "paid" and first.amount_paid == first.total == first_total(first)

    engine.advance("1mo")
    invoices = [admin.invoices.get(i.id) for i in sorted(admin.customers.invoices(cid), key=lambda i: str(i.number))]
    assert [i.status for i in invoices] == ["paid", "paid"]
    # The second bills the next month in advance and the first month's 120 calls (free tier).
    quote = product.quotes.subscription(sub.id)
    assert quote.total == invoices[1].total - sum((Decimal(x["total"]) for x in invoices[1].lines
                                                   if x["timing"] != "in_advance"), Decimal(0))
    admin.close()
    product.close()
