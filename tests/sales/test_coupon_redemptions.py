"""A coupon's redemptions are counted in its own catalog (issue 18): another catalog's code of
the same name is another coupon, with its own limit."""

from __future__ import annotations

import pytest

from engine.clock import TestClock
from engine.sales import (
    Conflict,
    apply_coupon,
    coupon_redemption_count,
    coupon_redemptions,
    create_customer,
    create_subscription,
    publish_catalog,
)
from engine.store import Database
from tests.sales.conftest import make_testco

ONE = "  HALF: {percent_off: 50, duration: repeating, periods: 2}"
LIMITED = "  HALF: {percent_off: 50, duration: repeating, periods: 2, max_redemptions: 2}"


def test_the_limit_counts_this_catalogs_redemptions_only(db: Database, clock: TestClock) -> None:
    other = make_testco(
        **{
            "catalog: testco": "catalog: otherco",
            "basic:": "solo:",
            "plus:": "duo:",
            "committed:": "bulk:",
            "annual:": "yearly:",
            "ebook:": "pdf:",
            "[plus]": "[duo]",
        }
    )
    with db.session() as s:
        publish_catalog(s, make_testco(**{ONE: LIMITED}), "tester", "v1", clock=clock)
        publish_catalog(s, other, "tester", "v1", clock=clock)
        for cid in ("c1", "c2", "c3", "c4"):
            create_customer(s, {"id": cid, "name": cid, "email": f"{cid}@x.example"}, clock=clock)
    with db.session() as s:
        create_subscription(s, "c1", "solo", clock=clock, coupon="HALF")  # otherco's HALF
        create_subscription(s, "c2", "basic", clock=clock, coupon="HALF")
        running = create_subscription(s, "c3", "basic", clock=clock)["id"]
    with db.session() as s:
        apply_coupon(s, running, "HALF", clock=clock)  # testco's second: allowed, otherco's not counted
    with db.read_session() as s:
        assert coupon_redemptions(s, "testco") == {"HALF": 2}
        assert coupon_redemption_count(s, "otherco", "HALF") == 1
        assert coupon_redemption_count(s, "testco", "FLAT") == 0
    with db.session() as s, pytest.raises(Conflict, match="reached its 2 redemptions"):
        create_subscription(s, "c4", "basic", clock=clock, coupon="HALF")
