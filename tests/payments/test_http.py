"""Payments through the door the product and operators use: HTTP, against a System with the
sandbox provider (a real server) on a test clock far from the wall clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engine.api import create_app
from engine.config import Settings
from engine.payments.models import JournalLine, Payment, PaymentMethod, Refund
from engine.payments.sandbox import sign_payload
from engine.sales.models import CreditNote, Subscription
from engine.store import OutboxEvent
from engine.system import System
from tests.api.conftest import keyed_system
from tests.payments.conftest import API_KEY, SECRET, Server

GOOD = "4242424242424242"
HARD_DECLINE = "4000000000000002"  # 05 generic decline: not retryable
UNKNOWN_CARD = "4111111111111111"  # not one of the sandbox's TEST_CARDS


@dataclass
class Api:
    system: System
    client: TestClient

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = self.client.request(method, path, json=body)
        self.system.drain()  # what the workers do after the request committed
        return r

    def customer(self, cid: str) -> None:
        r = self.call("POST", "/v1/customers", {"id": cid, "email": f"{cid}@example.com", "name": cid, "country": "US"})
        assert r.status_code == 201, r.text

    def subscribe(self, cid: str, payment_method: Any) -> dict[str, Any]:
        r = self.call("POST", "/v1/subscriptions", {"customer_id": cid, "plan": "pro", "quantity": 1,
                                                    "trial_days": 0, "payment_method": payment_method})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def first_invoice(self, cid: str) -> dict[str, Any]:
        items = self.call("GET", f"/v1/customers/{cid}/invoices").json()["items"]
        return dict(self.call("GET", f"/v1/invoices/{items[0]['id']}").json())


@pytest.fixture
def api(tmp_path: Any, sandbox: Server) -> Iterator[Api]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/pay.db",
        test_clock="2026-11-01T09:00:00Z",
        psp_url=sandbox.url,
        psp_api_key=API_KEY,
        psp_webhook_secret=SECRET,
        access_denial_buffer_ms=0,
    )
    system, admin, _product = keyed_system(settings)
    with TestClient(create_app(system.api_context()), headers={"Authorization": f"Bearer {admin}"}) as client:
        yield Api(system, client)
    system.db.dispose()


def count(api: Api, model: Any) -> int:
    with api.system.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def event_types(api: Api) -> list[str]:
    with api.system.db.session() as s:
        return list(s.scalars(select(OutboxEvent.type).order_by(OutboxEvent.seq)))


# --- finding 1: the product gets a customer charged -----------------------------------------


def test_a_subscription_with_a_card_is_charged_and_the_method_is_stored(api: Api) -> None:
    api.customer("cus_card")
    api.subscribe("cus_card", {"type": "card", "token": GOOD})
    invoice = api.first_invoice("cus_card")
    assert invoice["status"] == "paid", invoice
    assert Decimal(invoice["amount_paid"]) == Decimal(invoice["total"]) > 0
    assert [p["status"] for p in invoice["collection"]["payments"]] == ["succeeded"]
    methods = api.call("GET", "/v1/customers/cus_card/payment_methods").json()["items"]
    assert [(m["type"], m["last4"], m["default"]) for m in methods] == [("card", "4242", True)]
    assert "invoice.payment_failed" not in event_types(api)


def test_attach_list_detach_over_http(api: Api) -> None:
    api.customer("cus_pm")
    r = api.call("POST", "/v1/customers/cus_pm/payment_methods", {"type": "card", "token": GOOD})
    assert r.status_code == 201, r.text
    first = r.json()
    assert set(first) >= {"id", "customer_id", "type", "provider", "last4", "default", "created_at"}
    assert first["provider"] == "sandbox" and first["default"] is True
    assert api.call("POST", "/v1/clock/advance", {"by": "1h"}).status_code == 200
    second = api.call("POST", "/v1/customers/cus_pm/payment_methods", {"type": "card", "token": HARD_DECLINE}).json()
    items = api.call("GET", "/v1/customers/cus_pm/payment_methods").json()["items"]
    assert [(m["id"], m["default"]) for m in items] == [(second["id"], True), (first["id"], False)]
    r = api.call("DELETE", f"/v1/customers/cus_pm/payment_methods/{second['id']}")
    assert r.status_code == 204
    items = api.call("GET", "/v1/customers/cus_pm/payment_methods").json()["items"]
    assert [(m["id"], m["default"]) for m in items] == [(first["id"], True)]
    assert event_types(api).count("payment_method.attached") == 2
    assert event_types(api).count("payment_method.detached") == 1
    r = api.call("DELETE", f"/v1/customers/cus_pm/payment_methods/{second['id']}")
    assert r.status_code == 404 and r.json()["field"] == "payment_method_id"


def test_a_card_the_provider_refuses_is_a_422_on_token_and_nothing_is_written(api: Api) -> None:
    api.customer("cus_bad")
    before = (count(api, PaymentMethod), len(event_types(api)))
    r = api.call("POST", "/v1/customers/cus_bad/payment_methods", {"type": "card", "token": UNKNOWN_CARD})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "token"
    r = api.call("POST", "/v1/subscriptions", {"customer_id": "cus_bad", "plan": "pro", "trial_days": 0,
                                               "payment_method": {"type": "card", "token": UNKNOWN_CARD}})
    assert r.status_code == 422 and r.json()["field"] == "payment_method.token"
    assert (count(api, PaymentMethod), len(event_types(api))) == before
    assert count(api, Subscription) == 0


def test_an_unknown_customer_is_a_404(api: Api) -> None:
    r = api.call("POST", "/v1/customers/cus_nobody/payment_methods", {"type": "card", "token": GOOD})
    assert r.status_code == 404 and r.json()["field"] == "customer_id"
    r = api.call("GET", "/v1/customers/cus_nobody/payment_methods")
    assert r.status_code == 404 and r.json()["field"] == "customer_id"
    assert count(api, PaymentMethod) == 0


def test_a_subscription_can_name_a_stored_method(api: Api) -> None:
    api.customer("cus_stored")
    pm = api.call("POST", "/v1/customers/cus_stored/payment_methods", {"type": "card", "token": GOOD}).json()
    api.subscribe("cus_stored", pm["id"])
    assert api.first_invoice("cus_stored")["status"] == "paid"
    assert count(api, PaymentMethod) == 1  # not stored a second time from subscription.created


# --- finding 6: a hard decline is not retried; a new method collects it ----------------------


def test_a_hard_decline_fails_once_then_a_new_method_collects_the_invoice(api: Api) -> None:
    api.customer("cus_hard")
    api.subscribe("cus_hard", {"type": "card", "token": HARD_DECLINE})
    invoice = api.first_invoice("cus_hard")
    assert invoice["status"] == "finalized"
    [failed] = invoice["collection"]["payments"]
    assert (failed["decline_code"], failed["retryable"]) == ("generic_decline", False)
    with api.system.db.session() as s:
        props = s.scalars(select(OutboxEvent.properties).where(OutboxEvent.type == "payment.failed")).one()
    assert props["retryable"] is False and props["decline_code"] == "generic_decline"

    api.call("POST", "/v1/customers/cus_hard/payment_methods", {"type": "card", "token": GOOD})
    invoice = api.call("GET", f"/v1/invoices/{invoice['id']}").json()
    assert invoice["status"] == "paid"
    assert [p["status"] for p in invoice["collection"]["payments"]] == ["failed", "succeeded"]


# --- invoice operations -----------------------------------------------------------------------


def journal_balances(api: Api) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    with api.system.db.session() as s:
        for line in s.scalars(select(JournalLine)):
            out[line.account] = out.get(line.account, Decimal(0)) + line.debit - line.credit
    return out


def test_refund_through_the_provider_with_a_credit_note_and_journal(api: Api) -> None:
    api.customer("cus_ref")
    api.subscribe("cus_ref", {"type": "card", "token": GOOD})
    invoice = api.first_invoice("cus_ref")
    total = Decimal(invoice["total"])
    r = api.call("POST", f"/v1/invoices/{invoice['id']}/refunds", {"amount": "10.00", "reason": "goodwill"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["refund"]["status"] == "succeeded" and body["refund"]["amount"] == "10.00"
    assert body["credit_note"]["total"] == "10.00" and body["credit_note"]["reason"] == "refund"
    shown = api.call("GET", f"/v1/invoices/{invoice['id']}").json()
    assert [x["amount"] for x in shown["refunds"]] == ["10.00"]
    assert [c["total"] for c in shown["credit_notes"]] == ["10.00"]
    assert [p["amount"] for p in shown["payments"]] == [str(total)]
    balances = journal_balances(api)
    assert balances["refunds"] == Decimal("10.00")
    assert sum(balances.values()) == 0

    # More than paid minus refunded: 422 on amount, nothing written (no refund at the provider).
    before = (count(api, Refund), count(api, CreditNote), len(event_types(api)))
    r = api.call("POST", f"/v1/invoices/{invoice['id']}/refunds", {"amount": str(total - Decimal("9.99"))})
    assert r.status_code == 422 and r.json()["field"] == "amount"
    assert (count(api, Refund), count(api, CreditNote), len(event_types(api))) == before
    r = api.call("POST", f"/v1/invoices/{invoice['id']}/refunds", {"amount": str(total - Decimal("10.00"))})
    assert r.status_code == 201


def test_credit_note_void_and_write_off(api: Api) -> None:
    api.customer("cus_open")
    api.subscribe("cus_open", {"type": "card", "token": HARD_DECLINE})
    invoice = api.first_invoice("cus_open")
    total = Decimal(invoice["total"])
    r = api.call("POST", f"/v1/invoices/{invoice['id']}/credit_notes", {"amount": "5.00", "reason": "outage"})
    assert r.status_code == 201, r.text
    assert r.json()["total"] == "5.00" and r.json()["applied_to_invoice"] == "5.00"
    shown = api.call("GET", f"/v1/invoices/{invoice['id']}").json()
    assert Decimal(shown["amount_due"]) == total - 5
    assert shown["collection"]["remaining"] == str(total - 5)
    r = api.call("POST", f"/v1/invoices/{invoice['id']}/credit_notes", {"amount": str(total)})
    assert r.status_code == 422 and r.json()["field"] == "amount"

    r = api.call("POST", f"/v1/invoices/{invoice['id']}/mark_uncollectible")
    assert r.status_code == 200 and r.json()["status"] == "uncollectible"
    assert journal_balances(api)["bad_debt"] == total - 5
    assert journal_balances(api)["receivables"] == 0

    api.customer("cus_void")
    api.subscribe("cus_void", {"type": "card", "token": HARD_DECLINE})
    other = api.first_invoice("cus_void")
    r = api.call("POST", f"/v1/invoices/{other['id']}/void")
    assert r.status_code == 200 and r.json()["status"] == "void"
    assert api.call("GET", f"/v1/invoices/{other['id']}").json()["collection"]["status"] == "void"
    # A void invoice is collected no more, even when a new method arrives.
    api.call("POST", "/v1/customers/cus_void/payment_methods", {"type": "card", "token": GOOD})
    with api.system.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Payment).where(
            Payment.invoice_id == other["id"], Payment.status == "succeeded")) == 0
    r = api.call("POST", f"/v1/invoices/{other['id']}/void")
    assert r.status_code == 409
    # The refusal names the field and says why; the invoice stays as it was.
    assert r.json()["field"] == "invoice_id" and "is void" in r.json()["detail"], r.text
    assert api.call("GET", f"/v1/invoices/{other['id']}").json()["status"] == "void"


def test_a_credit_note_on_a_draft_invoice_is_a_409_and_nothing_is_written(api: Api) -> None:
    from engine.sales.models import Invoice

    api.customer("cus_draft")
    api.subscribe("cus_draft", {"type": "card", "token": GOOD})
    invoice = api.first_invoice("cus_draft")
    with api.system.db.session() as s:  # a draft, as the billing run holds one before issuing it
        row = s.get(Invoice, invoice["id"])
        assert row is not None
        row.status = "draft"
    before = (count(api, CreditNote), len(event_types(api)))
    r = api.call("POST", f"/v1/invoices/{invoice['id']}/credit_notes", {"amount": "1.00", "reason": "x"})
    assert r.status_code == 409 and r.json()["field"] == "invoice_id"
    assert (count(api, CreditNote), len(event_types(api))) == before


# --- finding 7: webhook freshness is wall-clock time; payments use the system's clock --------


def test_a_fresh_signed_webhook_is_accepted_on_a_test_clock_far_from_now(api: Api) -> None:
    api.customer("cus_hook")
    api.subscribe("cus_hook", {"type": "card", "token": GOOD})
    invoice = api.first_invoice("cus_hook")
    with api.system.db.session() as s:
        payment = s.scalars(select(Payment).where(Payment.invoice_id == invoice["id"])).one()
        ref, key = payment.provider_ref, payment.idempotency_key
        # Payments recorded it on the system's clock (the test clock), not the wall clock.
        assert payment.created_at.replace(tzinfo=None) == api.system.clock.now().replace(tzinfo=None)
    body = json.dumps({"id": "evt_fresh", "type": "payment.captured", "created": int(time.time()),
                       "data": {"id": ref, "object": "payment", "status": "captured", "amount": invoice["total"],
                                "currency": invoice["currency"], "idempotency_key": key}}).encode()
    r = api.client.post("/webhooks/psp/sandbox", content=body,
                        headers={"Sandbox-Signature": sign_payload(SECRET, int(time.time()), body)})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "applied"


def test_the_seed_replay_system_does_not_lend_its_clock_to_the_live_one(tmp_path: Any, sandbox: Server) -> None:
    """`billing up` builds the live system, then a replay system on the seed's clock (30 days
    back) over the same database. The live system's payments keep the live clock."""
    from engine.clock import TestClock
    from engine.system import build_system

    settings = Settings(database_url=f"sqlite:///{tmp_path}/up.db", test_clock="2026-11-01T09:00:00Z",
                        psp_url=sandbox.url, psp_api_key=API_KEY, psp_webhook_secret=SECRET)
    live, admin, _ = keyed_system(settings)
    replay = build_system(settings, clock=TestClock(datetime(2026, 10, 2, tzinfo=UTC)), db=live.db,
                          create_tables=False)
    assert replay.payments is not None and live.payments is not None
    assert live.payments.clock is live.clock and replay.payments.clock is replay.clock
    with TestClient(create_app(live.api_context()), headers={"Authorization": f"Bearer {admin}"}) as client:
        api = Api(live, client)
        api.customer("cus_live")
        api.subscribe("cus_live", {"type": "card", "token": GOOD})
        invoice = api.first_invoice("cus_live")
        assert invoice["status"] == "paid"
        with live.db.session() as s:
            payment = s.scalars(select(Payment).where(Payment.invoice_id == invoice["id"])).one()
            stamped = s.scalars(select(OutboxEvent.time).where(OutboxEvent.type == "payment.succeeded")).one()
        assert payment.created_at.replace(tzinfo=None) == live.clock.now().replace(tzinfo=None)
        assert stamped.replace(tzinfo=None) == live.clock.now().replace(tzinfo=None)
    live.db.dispose()


def test_webhook_freshness_is_wall_clock_time_on_a_test_clock(api: Api) -> None:
    """The system's clock is a month from the wall clock; a webhook signed now is fresh (202:
    no such payment here), one signed 10 minutes ago is stale (400)."""
    body = json.dumps({"id": "evt_any", "type": "payment.captured", "created": int(time.time()),
                       "data": {"id": "sbp_unknown", "object": "payment", "status": "captured",
                                "amount": "1.00", "currency": "USD"}}).encode()
    fresh = api.client.post("/webhooks/psp/sandbox", content=body,
                            headers={"Sandbox-Signature": sign_payload(SECRET, int(time.time()), body)})
    assert fresh.status_code == 202, fresh.text
    old = int(time.time()) - 600
    stale = api.client.post("/webhooks/psp/sandbox", content=body,
                            headers={"Sandbox-Signature": sign_payload(SECRET, old, body)})
    assert stale.status_code == 400 and "stale" in stale.json()["detail"]


@pytest.mark.parametrize("amount", ["NaN", "1.001", "-5.00", "0", 10.5])
def test_a_bad_refund_or_credit_amount_is_a_422_on_amount(api: Api, amount: Any) -> None:
    api.customer("cus_amt")
    api.subscribe("cus_amt", {"type": "card", "token": GOOD})
    invoice = api.first_invoice("cus_amt")
    before = (count(api, Refund), count(api, CreditNote))
    for path in ("refunds", "credit_notes"):
        r = api.call("POST", f"/v1/invoices/{invoice['id']}/{path}", {"amount": amount, "reason": "x"})
        assert r.status_code == 422, (path, r.text)
        assert r.json()["field"].endswith("amount"), r.text
    assert (count(api, Refund), count(api, CreditNote)) == before


# --- a credit note says where its money went, and closes what it covers as `credited` --------


def credit_note_events(api: Api) -> list[dict[str, Any]]:
    with api.system.db.session() as s:
        rows = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "credit_note.issued").order_by(OutboxEvent.seq))
        return [dict(r.properties) for r in rows]


def test_a_credit_note_covering_what_is_due_closes_the_invoice_as_credited(api: Api) -> None:
    api.customer("cus_cov")
    api.subscribe("cus_cov", {"type": "card", "token": HARD_DECLINE})
    invoice = api.first_invoice("cus_cov")
    total = Decimal(invoice["total"])
    r = api.call("POST", f"/v1/invoices/{invoice['id']}/credit_notes", {"reason": "outage"})
    assert r.status_code == 201, r.text
    assert (r.json()["applied_to_invoice"], r.json()["credited_to_balance"]) == (str(total), "0.00")
    shown = api.call("GET", f"/v1/invoices/{invoice['id']}").json()
    # Nobody paid it: the credit closed it, as a cancellation's credit does.
    assert shown["status"] == "credited" and Decimal(shown["amount_due"]) == 0
    assert "invoice.credited" in event_types(api) and "invoice.paid" not in event_types(api)
    issued = credit_note_events(api)[-1]
    assert (issued["applied_to_invoice"], issued["to_balance"]) == (str(total), "0.00")
    assert journal_balances(api).get("receivables", Decimal(0)) == 0


def test_a_credit_note_on_a_paid_invoice_goes_to_the_balance_and_its_event_says_so(api: Api) -> None:
    api.customer("cus_bal")
    api.subscribe("cus_bal", {"type": "card", "token": GOOD})
    invoice = api.first_invoice("cus_bal")
    r = api.call("POST", f"/v1/invoices/{invoice['id']}/credit_notes", {"amount": "7.00", "reason": "goodwill"})
    assert r.status_code == 201, r.text
    assert (r.json()["applied_to_invoice"], r.json()["credited_to_balance"]) == ("0.00", "7.00")
    issued = credit_note_events(api)[-1]
    assert (issued["applied_to_invoice"], issued["to_balance"], issued["credited_to_balance"]) == ("0.00", "7.00", True)
    assert api.call("GET", f"/v1/invoices/{invoice['id']}").json()["status"] == "paid"
    assert journal_balances(api)["customer_credit"] == Decimal("-7.00")


def test_a_credit_note_on_a_written_off_invoice_reverses_bad_debt_not_receivables(api: Api) -> None:
    api.customer("cus_wo")
    api.subscribe("cus_wo", {"type": "card", "token": HARD_DECLINE})
    invoice = api.first_invoice("cus_wo")
    total = Decimal(invoice["total"])
    assert api.call("POST", f"/v1/invoices/{invoice['id']}/mark_uncollectible").status_code == 200
    r = api.call("POST", f"/v1/invoices/{invoice['id']}/credit_notes", {"amount": "4.00", "reason": "dispute"})
    assert r.status_code == 201, r.text
    assert r.json()["credited_to_balance"] == "0.00"  # never paid: no money to give back
    shown = api.call("GET", f"/v1/invoices/{invoice['id']}").json()
    assert shown["status"] == "uncollectible" and shown["collection"]["status"] == "uncollectible"
    books = journal_balances(api)
    assert books.get("receivables", Decimal(0)) == 0  # written off already: nothing left to take off
    assert books["bad_debt"] == total - 4 and books["credit_notes"] == Decimal("4.00")
    assert sum(books.values()) == 0
