"""A cancellation settles the cancelled period's credit, over HTTP on a test clock (issue 15,
finding 5): the sandbox PSP declines the card, the shipped rules/dunning.yaml drives dunning to
cancellation, and what is asserted is what the customer and an operator see: invoices, credit
notes, the credit balance, and that no invoice, payment attempt or email follows.

What must hold: the credit for the unused part of the period goes against the period's open
invoice first (the credit note names it and it owes that much less; fully covered, it is closed
as `credited`); only what the customer actually paid may come back as balance credit; no
invoice for any period after the cancellation; no retry left for a closed invoice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from engine.api import create_key
from engine.automation import ScheduledJob
from engine.clock import TestClock
from engine.config import Settings
from engine.payments import create_sandbox_app
from engine.rules import publish_ruleset
from engine.store import OutboxEvent
from engine.system import System, build_system
from tests.api.conftest import start_server
from tests.automation.conftest import FAILING_CARD, GOOD_CARD, PSP_KEY, PSP_SECRET, Server, free_port

D = Decimal
START = datetime(2026, 4, 1, tzinfo=UTC)  # April has 30 days: the renewal is on day 30

CATALOG: dict[str, Any] = {
    "catalog": "dunning-cancel",
    "currency": "USD",
    "plans": {
        "basic": {"name": "Basic", "interval": "month",
                  "prices": [{"id": "base", "name": "Basic fee", "model": "flat", "amount": "30.00"}]},
    },
}


@dataclass
class Mails:
    """aiosmtpd handler: each message's subject, stamped with the engine's test clock."""

    clock: TestClock | None = None
    got: list[tuple[datetime, str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert self.clock is not None
        self.got.append((self.clock.now(), str(msg["To"]), str(msg["Subject"])))
        return "250 OK"

    def since(self, when: datetime, to: str) -> list[str]:
        return [subject for at, rcpt, subject in self.got if at > when and rcpt.startswith(to)]


@dataclass
class Engine:
    system: System
    http: httpx.Client
    mails: Mails

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = self.http.request(method, path, json=body)
        assert r.status_code == status, (path, body, r.text)
        return r.json()

    def advance(self, to: datetime) -> None:
        self.call("POST", "/v1/clock/advance", {"to": to.isoformat()})

    def invoices(self, customer: str) -> list[dict[str, Any]]:
        listed = self.call("GET", f"/v1/customers/{customer}/invoices")["items"]
        return [self.call("GET", f"/v1/invoices/{i['id']}") for i in sorted(listed, key=lambda i: i["number"])]

    def customer(self, cid: str, card: str) -> None:
        self.call("POST", "/v1/customers", {"id": cid, "email": f"{cid}@example.com", "name": cid, "country": "US"},
                  201)
        # The door for a card (wp/payments); until it is there, the payments call it wraps.
        r = self.http.post(f"/v1/customers/{cid}/payment_methods", json={"type": "card", "token": card})
        if r.status_code in (404, 405) and "customer_id" not in r.text:
            from engine import payments

            with self.system.db.session() as s:
                payments.add_payment_method(s, cid, "card", card)
        else:
            assert r.status_code == 201, r.text

    def subscribe(self, cid: str) -> str:
        return str(self.call("POST", "/v1/subscriptions", {"customer_id": cid, "plan": "basic"}, 201)["id"])

    def subscription(self, cid: str, sid: str) -> dict[str, Any]:
        subs = self.call("GET", f"/v1/customers/{cid}")["subscriptions"]
        return next(s for s in subs if s["id"] == sid)  # type: ignore[no-any-return]

    def balance(self, cid: str) -> Decimal:
        return D(self.call("GET", f"/v1/customers/{cid}")["credit_balance"])

    def events(self, type_: str, **props: Any) -> list[OutboxEvent]:
        with self.system.db.session() as s:
            rows = s.scalars(select(OutboxEvent).where(OutboxEvent.type == type_).order_by(OutboxEvent.seq)).all()
            return [r for r in rows if all(r.properties.get(k) == v for k, v in props.items())]

    def pending_retries(self) -> list[str]:
        with self.system.db.session() as s:
            return [str(j.payload.get("invoice_id")) for j in s.scalars(
                select(ScheduledJob).where(ScheduledJob.kind == "payment_retry", ScheduledJob.status == "pending"))]


@pytest.fixture(scope="module")
def psp() -> Iterator[Server]:
    server = Server(create_sandbox_app(api_key=PSP_KEY, webhook_secret=PSP_SECRET)).start()
    yield server
    server.stop()


@pytest.fixture
def engine(tmp_path: Path, psp: Server) -> Iterator[Engine]:
    mails = Mails()
    controller = Controller(mails, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/dunning.db", test_clock=START.isoformat(),
        smtp_url=f"smtp://127.0.0.1:{controller.port}?from=billing@example.com&timeout=5",
        psp_url=psp.url, psp_api_key=PSP_KEY, psp_webhook_secret=PSP_SECRET, access_cache_ttl=3600,
    )
    system = build_system(settings, automation=True)
    mails.clock = system.test_clock
    with system.db.session() as s:
        from engine import sales

        sales.publish_catalog(s, CATALOG, "test", clock=system.clock)
        for name in ("dunning", "notifications"):
            publish_ruleset(s, f"rules/{name}.yaml", "test", smoke=False, clock=system.clock)
        _, admin = create_key(s, "admin", now=system.clock.now())
    system.sync_rules()
    stop = threading.Event()
    system.start_workers(stop)
    server, thread, url = start_server(system)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=60) as http:
        yield Engine(system, http, mails)
    server.should_exit = True
    thread.join(10)
    stop.set()
    controller.stop()
    system.db.dispose()


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def test_dunning_cancellation_settles_the_credit_against_the_open_invoice(engine: Engine) -> None:
    # cus_april's first period has 30 days: dunning cancels on the renewal day (day 30).
    # cus_may's has 31: dunning cancels on its last day, before any renewal.
    engine.customer("cus_april", FAILING_CARD)
    april_sub = engine.subscribe("cus_april")
    engine.advance(at(5, 1))
    engine.customer("cus_may", FAILING_CARD)
    may_sub = engine.subscribe("cus_may")

    # May 1: cus_april's renewal invoice is issued at midnight and declined; at 06:00 the
    # first invoice is 30 days overdue and dunning cancels the subscription.
    engine.advance(at(5, 1, 23))
    assert engine.subscription("cus_april", april_sub)["status"] == "canceled"
    april, may = engine.invoices("cus_april")
    assert (april["period"]["start"], may["period"]["start"]) == ("2026-04-01", "2026-05-01")
    # April was written off by the rule; no day of it was left after the cancellation.
    assert april["status"] == "uncollectible" and april["credit_notes"] == []
    # May was not used at all: its whole 30.00 is credited against it, and it is closed.
    assert [(n["invoice_id"], n["total"]) for n in may["credit_notes"]] == [(may["id"], "30.00")]
    assert (may["status"], may["amount_due"], may["amount_paid"]) == ("credited", "0.00", "0.00")
    # Payments follows: nothing left to collect on it.
    assert D(may["collection"]["remaining"]) == 0, may["collection"]
    # The customer never paid: no balance credit.
    assert engine.balance("cus_april") == D(0)
    # No retry is left for the closed invoice.
    assert may["id"] not in engine.pending_retries()
    cancelled = at(5, 1, 6)

    # Past every retry the rules would have asked for: no payment attempt, no email.
    engine.advance(at(5, 10, 23))
    assert [e.time.replace(tzinfo=UTC) <= cancelled
            for e in engine.events("invoice.payment_failed", invoice_id=may["id"])] == [True]
    assert engine.mails.since(cancelled, "cus_april") == []
    assert engine.invoices("cus_april")[1]["status"] == "credited"

    # June 1, cus_may's day 30: one day of 31 unused.
    engine.advance(at(6, 1, 23))
    assert engine.subscription("cus_may", may_sub)["status"] == "canceled"
    [only] = engine.invoices("cus_may")  # nothing for June
    # 30.00 x 1/31 = 0.97 credited against May, which then is written off for the rest.
    assert [(n["invoice_id"], n["total"]) for n in only["credit_notes"]] == [(only["id"], "0.97")]
    assert (only["status"], only["total"], only["amount_due"]) == ("uncollectible", "30.00", "29.03")
    assert engine.balance("cus_may") == D(0)
    # Neither customer got an invoice for a period after their cancellation.
    assert len(engine.invoices("cus_april")) == 2
    assert engine.pending_retries() == []


def test_cancel_now_over_http_credits_the_open_invoice_and_only_what_was_paid_comes_back(engine: Engine) -> None:
    engine.customer("cus_unpaid", FAILING_CARD)
    engine.customer("cus_paid", GOOD_CARD)
    unpaid, paid = engine.subscribe("cus_unpaid"), engine.subscribe("cus_paid")
    engine.advance(at(4, 16))  # 15 of 30 days used
    unpaid_note = engine.call("POST", f"/v1/subscriptions/{unpaid}/cancel", {"at": "now"})["document"]
    paid_note = engine.call("POST", f"/v1/subscriptions/{paid}/cancel", {"at": "now"})["document"]

    # Unpaid: the 15.00 goes against the open April invoice, which still owes 15.00.
    [april] = engine.invoices("cus_unpaid")
    assert (unpaid_note["type"], unpaid_note["total"], unpaid_note["invoice_id"]) == (
        "credit_note", "15.00", april["id"])
    assert (april["status"], april["amount_due"]) == ("finalized", "15.00")
    assert engine.balance("cus_unpaid") == D(0)
    # Paid: nothing is open, the customer paid 30.00: the 15.00 comes back as balance credit.
    [april_paid] = engine.invoices("cus_paid")
    assert april_paid["status"] == "paid"
    assert (paid_note["total"], paid_note["invoice_id"]) == ("15.00", None)
    assert engine.balance("cus_paid") == D("15.00")

    engine.advance(at(5, 2))
    assert len(engine.invoices("cus_unpaid")) == len(engine.invoices("cus_paid")) == 1


def test_a_credit_note_that_settles_the_overdue_invoice_ends_dunning(engine: Engine) -> None:
    # An operator settles a dispute with a full credit instead of a payment: the invoice is
    # closed as `credited`, and the customer's account comes back from warning like after a payment.
    engine.customer("cus_goodwill", FAILING_CARD)
    engine.subscribe("cus_goodwill")
    engine.advance(at(4, 9, 12))  # day 8 overdue: warned at 06:00
    assert engine.call("GET", "/v1/customers/cus_goodwill")["dunning_state"] == "warning"
    (invoice,) = engine.invoices("cus_goodwill")
    note = engine.call("POST", f"/v1/invoices/{invoice['id']}/credit_notes", {"reason": "dispute settled"}, 201)
    assert note["applied_to_invoice"] == invoice["total"]
    engine.advance(at(4, 9, 13))
    assert engine.invoices("cus_goodwill")[0]["status"] == "credited"
    assert engine.call("GET", "/v1/customers/cus_goodwill")["dunning_state"] == "active"
    # Nothing left to collect: no retry, no suspension a week later.
    engine.advance(at(4, 20, 12))
    assert invoice["id"] not in engine.pending_retries()
    assert engine.call("GET", "/v1/customers/cus_goodwill")["dunning_state"] == "active"
