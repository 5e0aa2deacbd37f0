"""The overview's figures on a seeded history (tests/console/history.py), each worked out by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest

from engine.console.figures import Bucket, FailedMonth, MonthRevenue, Movement, PlanFigure
from engine.console.overview import choices, overview, read_facts
from engine.store import Database
from engine.system.console_readers import overview_readers
from tests.console import history

D = Decimal
FEB, MAR = date(2026, 2, 1), date(2026, 3, 1)
START, END = FEB, date(2026, 3, 31)


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    database = Database(f"sqlite:///{tmp_path}/figures.db")
    database.migrate()
    with database.session() as s:
        history.seed(s)
    yield database
    database.dispose()


def figures(db: Database, catalog: str | None = "saas", currency: str = "USD"):  # type: ignore[no-untyped-def]
    with db.session() as s:
        return overview(s, overview_readers(), START, END, as_of=END, currency=currency, catalog=catalog)


def test_mrr_and_arr(db: Database) -> None:
    o = figures(db)
    # Mar 31: A 150 + C 1,200/12 + D 80 (B's last period ended Mar 10)
    assert o.mrr == D("330.00") and o.arr == D("3960.00")
    # Feb 28: A 100 + B 50-10 + C 100
    assert o.mrr_by_month == [(FEB, D("240.00")), (MAR, D("330.00"))]


def test_revenue_by_month(db: Database) -> None:
    # invoiced: Feb A 108 + B 40; Mar A 162 + A's change 25 + D 80 (A's void change is not billed)
    # collected: Feb A 108 + B's second attempt 40; Mar D 80. Refunded: Mar 30 of D's.
    assert figures(db).revenue == [MonthRevenue(FEB, D("148.00"), D("148.00"), D("0.00")),
                                   MonthRevenue(MAR, D("267.00"), D("80.00"), D("30.00"))]


def test_customer_movements_and_retention(db: Database) -> None:
    o = figures(db)
    assert o.movements == [Movement(FEB, 0, 0, 0, 0, D(0), D(0), D(0), D(0)),
                           Movement(MAR, 1, 1, 0, 1, D("80.00"), D("50.00"), D("0.00"), D("40.00"))]
    # Jan 31: A 100, B 40, C 100 = 240; Mar 31 the same customers pay 150 + 0 + 100 = 250
    assert o.net_revenue_retention == D("104.2")
    # Every catalog: F (30 a month, Feb 20 - Mar 20) is new in February and churned in March
    every = figures(db, catalog=None)
    assert [(m.new, m.churned) for m in every.movements] == [(1, 0), (1, 2)]
    assert every.mrr_by_month == [(FEB, D("270.00")), (MAR, D("330.00"))]


def test_failed_payments_receivables_and_dunning(db: Database) -> None:
    o = figures(db)
    assert o.failed_payments == [FailedMonth(FEB, 1, D("40.00")), FailedMonth(MAR, 1, D("162.00"))]
    # A's March invoice is 16 days late, its change is due Apr 10, G's is 150 days late
    assert o.receivables == [Bucket("not yet due", 1, D("25.00")), Bucket("1–30 days", 1, D("162.00")),
                             Bucket("31–60 days", 0, D("0.00")), Bucket("61–90 days", 0, D("0.00")),
                             Bucket("over 90 days", 1, D("60.00"))]
    assert o.dunning == [("active", 3), ("warning", 1), ("suspended", 1), ("cancelled", 0)]


def test_top_plans(db: Database) -> None:
    assert figures(db).top_plans == [PlanFigure("pro", 1, D("150.00")), PlanFigure("pro-annual", 1, D("100.00")),
                                     PlanFigure("starter", 1, D("80.00"))]


def test_other_currency_is_never_added(db: Database) -> None:
    o = figures(db, catalog=None, currency="EUR")
    assert o.mrr == D("0.00")  # E's only period ended Mar 1
    assert o.mrr_by_month[0] == (FEB, D("200.00"))
    assert o.revenue[0] == MonthRevenue(FEB, D("200.00"), D("200.00"), D("0.00"))
    with db.session() as s:
        offered = choices(read_facts(s, overview_readers(), START, END))
    assert offered.currencies == ["USD", "EUR"] and offered.catalogs == ["saas", "usage"]


def test_a_range_that_ends_before_it_starts_is_refused(db: Database) -> None:
    with db.session() as s, pytest.raises(ValueError, match="end: the range ends before it starts"):
        overview(s, overview_readers(), END, START, as_of=END, currency="USD")
