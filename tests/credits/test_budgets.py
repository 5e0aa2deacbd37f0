"""Budgets and balance alerts in the library, on both backends: spend counts the period's fixed
fees and accrued usage (hand-computed), each alert is said once per threshold and period
whoever triggers it (a redelivered event, two workers at once), bad settings name their field
and write nothing; credits.balance_low and credits.exhausted once per grant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import credits, sales
from engine.access import Snapshot, plan_decision
from engine.clock import TestClock
from engine.store import Database
from engine.store.outbox import OutboxEvent
from tests.concurrency import at_once

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
D = Decimal
CATALOG = """\
catalog: budgets
currency: USD
metrics:
  calls: {event: b.call, aggregation: count}
features:
  calls: {name: Calls, type: metered, metric: calls}
plans:
  metered:
    name: Metered
    interval: month
    prices:
      - {id: base, model: flat, amount: "4.00", timing: in_advance}
      - {id: calls, model: per_unit, metric: calls, unit_amount: "0.50"}
    entitlements:
      calls: {limit: null, period: month, overage: allow}
    budget: {alerts: [50, 100], hard_stop: true}
"""


def _setup(db: Database, tmp_path: Path, clock: TestClock) -> str:
    path = tmp_path / "budgets.yaml"
    path.write_text(CATALOG)
    with db.session() as s:
        sales.publish_catalog(s, str(path), "test", clock=clock)
        sales.create_customer(s, {"id": "cus_b", "email": "b@example.com", "name": "B", "country": "US"}, clock=clock)
        sales.create_subscription(s, "cus_b", "metered", clock=clock)
    return "cus_b"


def _calls(db: Database, n: int, clock: TestClock, tag: str) -> dict[str, object]:
    with db.session() as s:
        sales.ingest_events(s, [{"id": f"{tag}{i}", "type": "b.call", "customer_id": "cus_b",
                                 "time": clock.now().isoformat(), "properties": {}} for i in range(n)], clock=clock)
        row = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "usage.recorded")
                        .order_by(OutboxEvent.seq.desc())).first()
        assert row is not None
        return {"id": row.id, "type": row.type, "customer_id": row.customer_id, "time": clock.now().isoformat(),
                "properties": row.properties}


def _said(db: Database, etype: str) -> list[dict[str, object]]:
    with db.session() as s:
        return [dict(r.properties or {}) for r in s.scalars(select(OutboxEvent).where(OutboxEvent.type == etype)
                                                            .order_by(OutboxEvent.seq))]


def test_spend_alerts_once_per_threshold_under_redelivery(db: Database, tmp_path: Path) -> None:
    clock = TestClock(T0)
    cid = _setup(db, tmp_path, clock)
    with db.session() as s:
        out = sales.set_budget(s, cid, {"amount": D("10.00")}, clock=clock)
    assert (out["alerts"], out["hard_stop"]) == ([50, 100], True)  # the plan's defaults
    with db.session() as s:
        assert sales.budget_status(s, cid)["spent"] == "4.00"  # type: ignore[index]  # the base fee, invoiced
    event = _calls(db, 2, clock, "a")  # 4.00 + 2 x 0.50 = 5.00: 50 %
    for _ in range(2):  # delivered, then redelivered
        with db.session() as s:
            sales.handle_spend_changed(s, event)
    [said] = _said(db, "spend.threshold_reached")
    assert (said["threshold"], said["spent"], said["budget"], said["currency"]) == (50, "5.00", "10.00", "USD")


def test_two_workers_checking_at_once_alert_once(db: Database, tmp_path: Path) -> None:
    clock = TestClock(T0)
    cid = _setup(db, tmp_path, clock)
    with db.session() as s:
        sales.set_budget(s, cid, {"amount": D("10.00")}, clock=clock)
    _calls(db, 12, clock, "b")  # 10.00: 50 and 100 %
    def check() -> None:
        with db.session() as s:
            sales.check_budget(s, cid, clock.now())

    errors = at_once(check)
    assert errors == []
    assert sorted(p["threshold"] for p in _said(db, "spend.threshold_reached")) == [50, 100]  # type: ignore[type-var]


def test_the_next_period_starts_fresh(sqlite_db: Database, tmp_path: Path) -> None:
    clock = TestClock(T0)
    cid = _setup(sqlite_db, tmp_path, clock)
    with sqlite_db.session() as s:
        sales.set_budget(s, cid, {"amount": D("5.00"), "alerts": [50]}, clock=clock)  # 4.00 is 80 %: at once
    assert [p["threshold"] for p in _said(sqlite_db, "spend.threshold_reached")] == [50]
    clock.set(T0 + timedelta(days=31))
    sales.run_due_billing(sqlite_db, clock)
    with sqlite_db.session() as s:
        status = sales.budget_status(s, cid)
        assert status is not None and status["period"]["start"] == "2026-04-01"  # type: ignore[index]
        assert (status["spent"], status["alerts_reached"]) == ("4.00", [])
        assert sales.check_budget(s, cid, clock.now()) == [50]


@pytest.mark.parametrize(("spec", "field"), [
    ({"amount": "-1"}, "amount"), ({"amount": "0"}, "amount"), ({"amount": "x"}, "amount"), ({}, "amount"),
    ({"amount": "10", "alerts": [50, 101]}, "alerts[1]"), ({"amount": "10", "alerts": [0]}, "alerts[0]"),
    ({"amount": "10", "alerts": [50.5]}, "alerts[0]"), ({"amount": "10", "alerts": "50"}, "alerts"),
    ({"amount": "10", "alerts": [50, 50]}, "alerts[1]"), ({"amount": "10", "low_balance": "-1"}, "low_balance"),
])
def test_bad_budgets_name_the_field_and_write_nothing(sqlite_db: Database, tmp_path: Path, spec: dict[str, object],
                                                      field: str) -> None:
    clock = TestClock(T0)
    cid = _setup(sqlite_db, tmp_path, clock)
    with sqlite_db.session() as s, pytest.raises((sales.SalesError, credits.CreditsError)) as info:
        sales.set_budget(s, cid, spec, clock=clock)
    assert info.value.field == field  # type: ignore[union-attr]
    with sqlite_db.session() as s:
        assert credits.get_budget(s, cid) is None
        with pytest.raises(sales.NotFound) as unknown:
            sales.set_budget(s, "cus_nobody", {"amount": "10"}, clock=clock)
        assert unknown.value.field == "customer_id"


def test_alerts_in_any_order_are_kept_ascending(sqlite_db: Database, tmp_path: Path) -> None:
    clock = TestClock(T0)
    cid = _setup(sqlite_db, tmp_path, clock)
    with sqlite_db.session() as s:
        out = sales.set_budget(s, cid, {"amount": "10.005", "alerts": [100, 50, 80]}, clock=clock)
    assert (out["amount"], out["alerts"]) == ("10.005", [50, 80, 100])  # a threshold: never rounded away
    with pytest.raises(credits.CreditsError) as info:  # the library takes them ascending only
        credits.BudgetRequest(D("10"), "USD", (80, 50)).check()
    assert info.value.field == "alerts[1]"


def test_balance_low_then_exhausted_once_per_grant(sqlite_db: Database, tmp_path: Path) -> None:
    clock = TestClock(T0)
    cid = _setup(sqlite_db, tmp_path, clock)
    now = clock.now()
    with sqlite_db.session() as s:
        sales.set_budget(s, cid, {"amount": "100", "low_balance": "3.00"}, clock=clock)
        credits.add_grant(s, credits.GrantRequest(cid, "USD", D("5.00"), "operator", now), now)
    with sqlite_db.session() as s:
        credits.draw_down(s, cid, "USD", [(0, D("2.50"))], now)
        assert credits.announce_balance(s, cid, "USD", now) == "credits.balance_low"  # 2.50 < 3.00
        assert credits.announce_balance(s, cid, "USD", now) is None  # said
        credits.draw_down(s, cid, "USD", [(0, D("9.00"))], now)
        assert credits.announce_balance(s, cid, "USD", now) == "credits.exhausted"
        assert credits.announce_balance(s, cid, "USD", now) is None
        credits.add_grant(s, credits.GrantRequest(cid, "USD", D("2.00"), "operator", now), now)
        assert credits.announce_balance(s, cid, "USD", now) == "credits.balance_low"  # a new grant, a new episode
    assert _said(sqlite_db, "credits.balance_low")[0] == {"unit": "USD", "amount": "2.50", "threshold": "3.00"}
    assert _said(sqlite_db, "credits.exhausted") == [{"unit": "USD", "amount": "0.00", "threshold": "3.00"}]


def test_the_access_decision_stops_on_a_spent_budget(sqlite_db: Database, tmp_path: Path) -> None:
    clock = TestClock(T0)
    cid = _setup(sqlite_db, tmp_path, clock)
    with sqlite_db.session() as s:
        found = sales.customer_plan(s, cid)
        assert found is not None
        sub, catalog, plan = found
    spent = Snapshot(cid, True, {}, sub, catalog, plan, budget_left=D("0.00"))
    assert plan_decision(spent, "calls", D(1)).reason == "budget_exhausted"
    assert plan_decision(Snapshot(cid, True, {}, sub, catalog, plan, budget_left=D("0.01")), "calls", D(1)).allowed
    assert plan_decision(Snapshot(cid, True, {}, sub, catalog, plan), "calls", D(1)).allowed  # no budget
