"""Automatic top-up: due once below the threshold, bought once per key (a redelivered or racing
trigger buys nothing more), what is bought but unpaid counts toward the threshold; a threshold
not below the pack's credit is refused naming `threshold`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from engine import credits, sales
from engine.clock import TestClock
from engine.sales.models import Invoice
from engine.store import Database

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _customer(db: Database, clock: TestClock) -> str:
    with db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "test", clock=clock)
        sales.create_customer(s, {"id": "cus_t", "email": "t@example.com", "name": "T", "currency": "USD"},
                              clock=clock)
        sales.create_subscription(s, "cus_t", "free", clock=clock)
    return "cus_t"


def _pack_invoices(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Invoice).where(Invoice.billing_key.like("charge:pack:%")))
                   or 0)


def test_a_top_up_is_bought_once_per_key(sqlite_db: Database) -> None:
    clock = TestClock(T0)
    cid = _customer(sqlite_db, clock)
    with sqlite_db.session() as s:
        assert sales.set_top_up(s, cid, enabled=True, clock=clock) == {
            "enabled": True, "threshold": "10.00", "pack": "starter"}  # the catalog's defaults
        due = credits.due_top_up(s, cid, "USD", T0)
    assert due == ("starter", "auto:1")
    event = {"id": "evt_1", "customer_id": cid, "time": T0.isoformat(), "properties": {"pack": "starter", "key": "auto:1"}}
    with sqlite_db.session() as s:
        first = sales.handle_top_up_requested(s, event)
    with sqlite_db.session() as s:  # redelivered
        again = sales.handle_top_up_requested(s, {**event, "id": "evt_2"})
        assert credits.due_top_up(s, cid, "USD", T0) is None  # 50.00 on its way counts
    assert again["grant"]["id"] == first["grant"]["id"] and again["invoice"]["id"] == first["invoice"]["id"]
    assert first["grant"]["status"] == "pending" and first["grant"]["source"] == "top_up"
    assert _pack_invoices(sqlite_db) == 1


def test_a_threshold_not_below_the_pack_is_refused(sqlite_db: Database) -> None:
    clock = TestClock(T0)
    cid = _customer(sqlite_db, clock)
    with sqlite_db.session() as s:
        with pytest.raises(sales.Conflict) as info:
            sales.set_top_up(s, cid, enabled=True, threshold="50.00", pack="starter", clock=clock)
        assert info.value.field == "threshold"
        with pytest.raises(sales.NotFound) as unknown:
            sales.set_top_up(s, cid, enabled=True, threshold="5.00", pack="mega", clock=clock)
        assert unknown.value.field == "pack"
    with sqlite_db.session() as s:
        assert credits.get_top_up(s, cid) is None
