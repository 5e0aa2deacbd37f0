"""Two demo customers billed through the engine on a test clock, for the customer card's tests
(AppTest and the browser):

- Ada Lovelace (edu, GB), Pro x 3 with coupon WELCOME20 from Oct 1 2026, no card: her invoice
  has the edu-50 promotion rule and the coupon on every line, 20 % UK VAT; an invoice email was
  sent for it; dunning suspended her ("invoice overdue 14 days"), so SSO is denied
  (payment_overdue).
- Bob Builder (smb, US), Pro x 2 with a card that pays, 12,000 API calls in his first month:
  his Nov 1 invoice bills them in graduated tiers (10,000 free, 2,000 at 0.002).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine import dunning, payments, rules, sales
from engine.clock import TestClock
from engine.config import Settings
from engine.simulation import CardModel
from engine.system import System, build_system
from engine.system.lifecycle_cards import PROVIDER, DecliningProvider

START = datetime(2026, 10, 1, 9, tzinfo=UTC)
END = datetime(2026, 11, 2, 9, tzinfo=UTC)


def build(url: str) -> System:
    clock = TestClock(START)
    service = payments.PaymentService([DecliningProvider(CardModel(failure_rate=0.0), clock)], clock,
                                      default_provider=PROVIDER)
    system = build_system(Settings(database_url=url, access_denial_buffer_ms=0), clock=clock, automation=True,
                          payments=service)
    with system.db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "demo", clock=clock)
        for name in ("promotions", "notifications", "access", "dunning"):
            rules.publish_ruleset(s, f"rules/{name}.yaml", "demo", clock=clock)
    system.sync_rules()
    with system.db.session() as s:
        sales.create_customer(s, {"id": "cus_ada", "name": "Ada Lovelace", "email": "ada@uni.example",
                                  "segment": "edu", "country": "GB"}, clock=clock)
        sales.create_customer(s, {"id": "cus_bob", "name": "Bob Builder", "email": "bob@builder.example",
                                  "segment": "smb", "country": "US"}, clock=clock)
        payments.add_payment_method(s, "cus_bob", "card", "tok_bob", provider=PROVIDER, service=service)
    with system.db.session() as s:
        sales.create_subscription(s, "cus_ada", "pro", clock=clock, quantity=3, coupon="WELCOME20", trial_days=0,
                                  promotions=system.promotions)
        sales.create_subscription(s, "cus_bob", "pro", clock=clock, quantity=2, trial_days=0,
                                  promotions=system.promotions)
    system.drain()
    calls = [{"id": f"bob_{n}", "type": "api.request", "customer_id": "cus_bob",
              "time": (START + timedelta(minutes=3 * n)).isoformat(), "properties": {}} for n in range(12_000)]
    for first in range(0, len(calls), 6000):
        with system.db.session() as s:
            sales.ingest_events(s, calls[first:first + 6000], clock=clock)
    system.advance_clock(END)
    with system.db.session() as s:
        dunning.set_state(s, "cus_ada", "suspended", reason="invoice overdue 14 days", now=clock.now())
    system.drain()
    denied = system.access.check("cus_ada", "sso")
    assert denied.reason == "payment_overdue", denied
    return system
