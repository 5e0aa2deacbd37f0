"""The `charge` action end to end: a rule asks for a fee, automation publishes
`charge.requested`, sales issues a finalized one-off invoice for it, payments collects it;
and the same request, redelivered, bills nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine import payments, sales
from engine.clock import TestClock
from engine.rules import publish_ruleset
from engine.store import Database, OutboxEvent
from engine.system import System
from tests.automation.conftest import CATALOG, GOOD_CARD, Inbox, Server, make_system, payment_service

FEES = """\
ruleset: fees
rules:
  - id: setup-fee
    on: subscription.created
    then:
      - charge: {amount: "15.00", description: Setup fee}
"""


@pytest.fixture
def fee_system(tmp_path: Path, psp: Server, inbox: tuple[Inbox, str]) -> Iterator[System]:
    system = make_system(tmp_path, psp.url, inbox[1], rulesets=())
    path = tmp_path / "fees.yaml"
    path.write_text(FEES)
    with system.db.session() as s:
        publish_ruleset(s, str(path), "test", smoke=False, clock=system.clock)
    system.sync_rules()
    yield system
    system.db.dispose()


def charge_events(system: System) -> list[OutboxEvent]:
    with system.db.session() as s:
        rows = list(s.scalars(select(OutboxEvent).where(OutboxEvent.type == "charge.requested")))
        s.expunge_all()
        return rows


def test_a_charge_rule_bills_a_one_off_invoice_that_payments_collect(fee_system: System) -> None:
    system = fee_system
    with system.db.session() as s:
        sales.create_customer(s, {"id": "cus_fee", "email": "fee@example.com", "name": "Fee",
                                  "country": "US"}, clock=system.clock)
        payments.add_payment_method(s, "cus_fee", "card", GOOD_CARD, service=payment_service(system))
        sales.create_subscription(s, "cus_fee", "basic", clock=system.clock, payment_method=GOOD_CARD)
    system.drain()
    system.jobs.run_due(system.clock.now())
    with system.db.session() as s:
        invoices = sales.list_invoices(s, "cus_fee")["items"]
        fees = [i for i in invoices if i["reason"] == "charge"]
        assert len(fees) == 1, invoices
        fee = sales.get_invoice(s, fees[0]["id"])
    assert fee["total"] == "15.00" and fee["amount_due"] == "15.00" and fee["currency"] == "USD"
    assert fee["number"] and fee["status"] == "paid", fee  # finalized, then collected
    assert [(line["name"], line["amount"]) for line in fee["lines"]] == [("Setup fee", "15.00")]
    assert fee["payments"] and fee["payments"][0]["amount"] == "15.00"

    # Redelivered: the rule's event to automation, the charge to sales. Nothing new is billed.
    events = charge_events(system)
    assert len(events) == 1
    with system.db.session() as s:
        created = s.scalars(select(OutboxEvent).where(
            OutboxEvent.type == "subscription.created",
            OutboxEvent.customer_id == "cus_fee")).one().envelope()
        assert system.automation is not None
        system.automation.handle(s, created)
        again = sales.handle_charge_requested(s, events[0].envelope())
    system.drain()
    assert again["id"] == fee["id"]
    assert len(charge_events(system)) == 1
    with system.db.session() as s:
        assert [i["id"] for i in sales.list_invoices(s, "cus_fee")["items"]
                if i["reason"] == "charge"] == [fee["id"]]


NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)


def envelope(event_id: str, customer_id: str = "cus_c", **props: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "charge.requested", "customer_id": customer_id,
            "time": NOW.isoformat(), "properties": {"description": "Late fee", **props}}


def test_the_charge_handler_is_idempotent_and_refuses_bad_input(db: Database) -> None:
    clock = TestClock(NOW)
    catalog = {**CATALOG, "taxes": {"DE": 19}}
    with db.session() as s:
        sales.publish_catalog(s, catalog, "test", clock=clock)
        sales.create_customer(s, {"id": "cus_c", "email": "c@example.com", "name": "C",
                                  "country": "DE"}, clock=clock)
        sales.create_subscription(s, "cus_c", "basic", clock=clock)
        sales.create_customer(s, {"id": "cus_nosub", "email": "n@example.com", "name": "N"},
                              clock=clock)
        before = sales.invoice_count(s)

    with db.session() as s:
        first = sales.handle_charge_requested(s, envelope("chg_1", amount="10.005"))
    with db.session() as s:
        second = sales.handle_charge_requested(s, envelope("chg_1", amount="10.005"))
        other = sales.handle_charge_requested(s, envelope("chg_2", amount="3"))
    assert second["id"] == first["id"] and other["id"] != first["id"]
    # Rounded once to the currency (half_up), taxed as the customer's country is.
    assert (first["subtotal"], first["tax"], first["total"]) == ("10.01", "1.90", "11.91")
    assert first["status"] == "finalized" and first["issued_at"].startswith("2026-03-05")
    with db.session() as s:
        assert sales.invoice_count(s) == before + 2
        assert Decimal(sales.get_invoice(s, other["id"])["amount_due"]) == Decimal("3.57")

    bad = [envelope("chg_3", amount="0"), envelope("chg_4", amount="ten"),
           envelope("chg_5", amount="-5"), envelope("chg_6", amount="5", currency="EUR"),
           envelope("chg_7", "cus_nobody", amount="5"), envelope("chg_8", "cus_nosub", amount="5"),
           {**envelope("chg_9", amount="5"), "time": "2026-03-05T12:00:00"}]
    for env in bad:
        with pytest.raises(sales.SalesError), db.session() as s:
            sales.handle_charge_requested(s, env)
    with db.session() as s:
        assert sales.invoice_count(s) == before + 2
