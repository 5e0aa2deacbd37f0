"""Messages as customers get them, from the events the engine really emits.

One journey through the doors (HTTP on a test clock, `billing reconcile` for a camt.053
statement, a real SMTP server): a free customer crosses 80 % and 100 % of the API quota and
is denied; a Pro customer without a card (who pays by bank transfer) ends a trial, gets an
invoice, pays part of it by transfer, and falls into dunning. Then:

- the invoice email carries the seller's name and IBAN and the invoice's RF reference;
- the "payment received" email names that payment's amount and what remains due;
- a prepaid Pro customer with a budget gets its low-balance and budget alerts, and a free
  customer whose only credit expired its credits-exhausted message;
- every template a shipped rule sends renders, on every channel and in every locale, with
  the context built from the real event that triggers it (StrictUndefined): none names a
  variable the event does not give;
- no notification failed.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from engine import automation, messaging, payments, sales
from engine.api import create_key
from engine.automation.context import build_context, subject_context
from engine.catalog import load_catalog_text
from engine.cli.commands.serve import migrate_database
from engine.config import Settings
from engine.messaging import CHANNELS, Renderer, RenderLimits
from engine.payments import create_sandbox_app
from engine.rules import load_ruleset, publish_ruleset
from engine.store import OutboxEvent
from engine.system import System, build_system
from engine.system.samples import CUSTOMER as SAMPLE_CUSTOMER
from engine.system.samples import EVENT_PROPERTIES, locales_of, triggers
from tests.api.conftest import start_server
from tests.cli.runner import invoke
from tests.payments.camt import Entry, camt053
from tests.payments.conftest import Server

from .conftest import SmtpServer, start_smtp

pytestmark = pytest.mark.smtp

ROOT = Path(__file__).resolve().parents[2]
SELLER_NAME = "Acme Analytics AG"
SELLER_IBAN = "CH9300762011623852957"
RULESETS = [load_ruleset(ROOT / "rules" / name) for name in ("notifications.yaml", "dunning.yaml")]


@dataclass
class Journey:
    system: System
    admin: httpx.Client
    smtp: SmtpServer
    invoice: dict[str, Any]
    db_url: str

    def emails(self, template: str, to: str) -> list[EmailMessage]:
        return [m for m in self.smtp.inbox.messages
                if m["X-Billing-Template"] == template and m["To"] == to]


def _text(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def _advance(admin: httpx.Client, by: str) -> None:
    r = admin.post("/v1/clock/advance", json={"by": by})
    assert r.status_code == 200, r.text


def _usage(customer: str, n: int, start: int) -> list[dict[str, Any]]:
    return [{"id": f"evt_use_{start + i}", "type": "api.request", "customer_id": customer,
             "time": "2026-11-01T10:00:00Z", "properties": {}} for i in range(n)]


# A plan that bills usage early (progressive billing): its customer's usage crosses 5.00.
PROGRESSIVE = """
catalog: real-events-progressive
currency: USD
metrics:
  api_calls: {event: api.request, aggregation: count}
plans:
  metered-early:
    name: Metered, billed early
    interval: month
    prices:
      - {id: calls, name: API calls, model: per_unit, metric: api_calls, unit_amount: "0.01"}
    progressive_billing: {thresholds: ["5.00"], then_every: "10.00"}
"""

PSP_SECRET = "whsec_" + "journey-test"  # the sandbox and the engine share it; no default exists


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    tmp = tmp_path_factory.mktemp("journey")
    smtp = start_smtp()
    sandbox = Server(create_sandbox_app(api_key="sk_sandbox_test", webhook_url="http://127.0.0.1:9/none",
                                        webhook_secret=PSP_SECRET)).start()
    db_url = f"sqlite:///{tmp}/billing.db"
    settings = Settings(database_url=db_url, test_clock="2026-11-01T09:00:00Z",
                        access_denial_buffer_ms=0, smtp_url=smtp.url, psp_url=sandbox.url,
                        psp_api_key="sk_sandbox_test", psp_webhook_secret=PSP_SECRET,
                        seller_name=SELLER_NAME, seller_iban=SELLER_IBAN)
    migrate_database(db_url)  # as `billing serve` does: `billing reconcile` migrates too
    # The full embedded deployment: automation and the scheduler with the API.
    system = build_system(settings, automation=True)
    with system.db.session() as s:
        sales.publish_catalog(s, ROOT / "catalogs" / "saas.yaml", "test", clock=system.clock)
        sales.publish_catalog(s, load_catalog_text(PROGRESSIVE, "progressive.yaml"), "test", clock=system.clock)
        _, admin_key = create_key(s, "admin", now=system.clock.now())
        _, product_key = create_key(s, "product", now=system.clock.now())
        for ruleset in RULESETS:
            publish_ruleset(s, ruleset, "test", clock=system.clock, smoke=False)
    stop = threading.Event()
    system.start_workers(stop)
    server, thread, url = start_server(system)
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60)
    product = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {product_key}"}, timeout=60)
    try:
        # A free customer crosses 80 % and 100 % of the API quota and is denied (an offer).
        for body in ({"id": "cus_free", "email": "free@example.com", "name": "Fay Free", "country": "DE"},
                     {"id": "cus_bank", "email": "bank@example.com", "name": "Ben Bank", "country": "CH"},
                     {"id": "cus_early", "email": "early@example.com", "name": "Eve Early", "country": "DE"}):
            assert admin.post("/v1/customers", json=body).status_code == 201
        assert admin.post("/v1/subscriptions", json={"customer_id": "cus_free", "plan": "free"}).status_code == 201
        # A goodwill credit that runs out unused two days on: credits.expired, its message.
        expires = (system.clock.now() + timedelta(days=2)).isoformat()
        r = admin.post("/v1/customers/cus_free/wallet/grants",
                       json={"unit": "USD", "amount": "2.00", "reason": "goodwill", "expires_at": expires})
        assert r.status_code == 201, r.text
        check = {"customer_id": "cus_free", "feature": "api"}
        product.post("/v1/events", json=_usage("cus_free", 800, 0))
        assert product.post("/v1/access/check", json=check).json()["allowed"] is True
        product.post("/v1/events", json=_usage("cus_free", 200, 800))
        assert product.post("/v1/access/check", json=check).json()["allowed"] is False
        # Usage past a progressive billing threshold: invoice.progressive, its message.
        r = admin.post("/v1/subscriptions", json={"customer_id": "cus_early", "plan": "metered-early"})
        assert r.status_code == 201, r.text
        product.post("/v1/events", json=_usage("cus_early", 600, 5000))
        # A Pro customer without a card: a trial, its end, an invoice to pay by transfer.
        r = admin.post("/v1/subscriptions", json={"customer_id": "cus_bank", "plan": "pro"})
        assert r.status_code == 201, r.text
        # A Pro customer with prepaid credit and a budget: at the trial's end the first invoice
        # (70.21, or 58.55 under the launch promotion) is paid from the 100.00 grant, which
        # leaves it below the 50.00 low-balance level (credits.balance_low), and its 59.00
        # (or 49.20) before tax passes 50 % of the 50.00 budget (spend.threshold_reached).
        # The free customer's goodwill credit expiring unused empties its wallet: credits.exhausted.
        assert admin.post("/v1/customers", json={"id": "cus_low", "email": "low@example.com", "name": "Lou Low",
                                                 "country": "DE"}).status_code == 201
        assert admin.post("/v1/subscriptions", json={"customer_id": "cus_low", "plan": "pro"}).status_code == 201
        r = admin.post("/v1/customers/cus_low/wallet/grants", json={"unit": "USD", "amount": "100.00", "reason": "prepaid"})
        assert r.status_code == 201, r.text
        r = product.put("/v1/customers/cus_low/budget", json={"amount": "50.00", "alerts": [50, 100],
                                                              "low_balance": "50.00"})
        assert r.status_code == 200, r.text
        _advance(admin, "12d")  # trial_will_end (3 days ahead)
        _advance(admin, "3d")   # the trial ends: the first invoice
        invoices = admin.get("/v1/customers/cus_bank/invoices").json()["items"]
        [invoice] = [i for i in invoices if Decimal(i["total"]) > 0]
        # The customer transfers 50.00 with the reference the invoice email gives.
        [mail] = [m for m in smtp.inbox.messages if m["To"] == "bank@example.com"
                  and m["X-Billing-Template"] == "invoice_issued"]
        found = re.search(r"Reference:\s+(RF\w+)", _text(mail))
        assert found, _text(mail)
        reference = found.group(1)
        statement = tmp / "statement.xml"
        statement.write_bytes(camt053([Entry("50.00", invoice["currency"], reference=reference,
                                             booked="2026-11-16")], iban=SELLER_IBAN))
        env = dict(os.environ, BILLING_DATABASE_URL=db_url, BILLING_PSP_URL=sandbox.url,
                   BILLING_PSP_WEBHOOK_SECRET=PSP_SECRET)
        done = invoke("reconcile", str(statement), env=env, cwd=tmp)
        assert done.returncode == 0, done.stderr
        _advance(admin, "1h")   # the payment's email goes out
        _advance(admin, "7d")   # still partly unpaid: the dunning warning
        yield Journey(system, admin, smtp, invoice, db_url)
    finally:
        server.should_exit = True
        thread.join(10)
        stop.set()
        admin.close()
        product.close()
        system.db.dispose()
        sandbox.stop()
        smtp.controller.stop()


def test_the_invoice_email_tells_a_bank_transfer_customer_how_to_pay(journey: Journey) -> None:
    [mail] = journey.emails("invoice_issued", "bank@example.com")
    text = _text(mail)
    reference = payments.invoice_reference(journey.invoice["id"])
    assert SELLER_IBAN in text and SELLER_NAME in text
    assert reference in text
    assert reference in mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    with journey.system.db.session() as s:  # the reference payments matches transfers with
        summary = payments.invoice_payment_summary(s, journey.invoice["id"])
    assert summary is not None and summary["payment_reference"] == reference


def test_payment_received_names_that_payment_and_what_remains(journey: Journey) -> None:
    [mail] = journey.emails("payment_succeeded", "bank@example.com")
    total = Decimal(journey.invoice["total"])
    remaining = total - Decimal("50.00")
    text = _text(mail)
    assert "we received $50.00 for invoice" in text, text
    assert f"${remaining} of it remains due" in text, text
    assert f"${total}" not in text


def _real_events(journey: Journey) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    with journey.system.db.session() as s:
        for row in s.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)):
            out.setdefault(row.type, []).append(
                {"id": row.id, "type": row.type, "customer_id": row.customer_id,
                 "time": row.time.isoformat(), "properties": dict(row.properties or {})})
    return out


def test_every_shipped_template_renders_with_the_context_its_real_event_carries(
        journey: Journey) -> None:
    events = _real_events(journey)
    # Generous time: this checks names, not speed (the first render compiles the template).
    renderer = Renderer(ROOT / "templates", RenderLimits(max_seconds=30))
    auto = journey.system.automation
    assert auto is not None
    now = journey.system.clock.now()
    rendered: set[str] = set()
    failures = []
    for trig in triggers(RULESETS):
        with journey.system.db.session() as s:
            if trig.trigger.startswith("schedule:"):
                ctx = subject_context(auto.records, s, "invoice", journey.invoice["id"], now)
                assert ctx is not None
                contexts = [ctx]
            else:
                real = events.get(trig.trigger)
                assert real, f"the journey emitted no {trig.trigger} (rule {trig.rule})"
                contexts = [build_context(auto.records, s, env, now) for env in real]
            for ctx in contexts:
                if not (ctx.get("customer") or {}).get("id"):
                    continue
                data = automation.template_data(trig.template, ctx, trig.data, now=now,
                                                public_url=auto.public_url, seller=auto.seller,
                                                facts=auto.records.facts(s))
                for channel in CHANNELS:
                    for locale in locales_of(renderer):
                        try:
                            renderer.render(trig.template, channel, data, locale, ctx["customer"])
                        except messaging.TemplateError as exc:
                            failures.append(f"{trig.rule} on {trig.trigger}: {exc}")
                rendered.add(trig.template)
    assert not failures, "\n".join(sorted(set(failures)))
    shipped = set(renderer.names()) - {"digest"}  # the digest: messaging's own, tested there
    assert shipped <= rendered, f"shipped but sent by no rule: {shipped - rendered}"


def test_the_lint_samples_carry_what_the_real_events_carry(journey: Journey) -> None:
    events = _real_events(journey)
    for etype, sample in EVENT_PROPERTIES.items():
        for env in events.get(etype, []):
            missing = set(env["properties"]) - set(sample)
            assert not missing, f"{etype}: the sample lacks {missing}"
    assert set(SAMPLE_CUSTOMER) >= {"id", "name", "email", "locale"}


def test_no_notification_failed(journey: Journey) -> None:
    with journey.system.db.session() as s:
        rows = messaging.list_notifications(s, limit=1000)
    assert rows
    assert [r for r in rows if r["status"] in ("failed", "dead")] == []
    templates = {r["template"] for r in rows}
    assert {"quota_warning", "quota_reached", "invoice_issued", "payment_succeeded"} <= templates
