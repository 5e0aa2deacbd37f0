"""engine.system binds what automation reads and does (engine/automation/ports.py) to the
subsystems that own it: a missing row reads as None, the sweep's subject filters become
sales' scan filters over dunning's states, and the bound components satisfy the ports."""

from __future__ import annotations

from datetime import UTC, datetime

from engine import automation, dunning, sales
from engine.clock import FixedClock
from engine.rules import RulePromotions, RulesRuntime
from engine.store import Database
from engine.system import SubsystemEffects, SubsystemRecords, owners

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_missing_rows_read_as_none(sqlite_db: Database) -> None:
    records = SubsystemRecords()
    with sqlite_db.session() as s:
        assert records.customer(s, "cus_nobody") is None
        assert records.invoice(s, "in_nothing") is None
        assert records.subscription(s, "sub_nothing") is None
        assert records.dunning_state(s, "cus_nobody") == records.default_state == dunning.ACTIVE


def test_subject_filters_become_sales_scan_filters_over_dunning_states(sqlite_db: Database) -> None:
    records = SubsystemRecords()
    with sqlite_db.session() as s:
        for cid in ("cus_a", "cus_b"):
            sales.create_customer(
                s, {"id": cid, "name": cid, "email": f"{cid}@example.com", "currency": "EUR"}, clock=FixedClock(NOW)
            )
        dunning.set_states(s, [dunning.StateChange("cus_b", "suspended")], now=NOW)
    with sqlite_db.session() as s:
        every = [r["id"] for r in records.scan(s, "customer", after="", limit=10, filters=None)]
        suspended = records.scan(
            s, "customer", after="", limit=10, filters=[automation.SubjectFilter(states_in=frozenset({"suspended"}))]
        )
        not_suspended = records.scan(
            s,
            "customer",
            after="",
            limit=10,
            filters=[automation.SubjectFilter(states_not_in=frozenset({"suspended"}))],
        )
        nothing = records.scan(s, "customer", after="", limit=10, filters=[])
    assert every == ["cus_a", "cus_b"]
    assert [r["id"] for r in suspended] == ["cus_b"]
    assert [r["id"] for r in not_suspended] == ["cus_a"]
    assert nothing == []


def test_the_bound_components_are_the_systems() -> None:
    runtime = RulesRuntime(FixedClock(NOW), engine="python")
    promotions = RulePromotions(runtime)
    bound = owners(promotions)
    assert isinstance(bound.records, SubsystemRecords)
    assert isinstance(bound.effects, SubsystemEffects) and bound.effects.promotions is promotions
    assert bound.effects.payments is None  # no payment service: a due retry is asked for by event
    assert bound.effects.channels == frozenset({"email", "sms", "in_app", "webhook"})
    assert bound.effects.is_invoice_template("invoice_issued")
    assert not bound.effects.is_invoice_template("payment_failed")
