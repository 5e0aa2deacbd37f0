"""The console's "today" is the engine's clock, not the wall's: on a test clock far from the
real date (the stored one an API on `--test-clock` writes, or BILLING_TEST_CLOCK before any
engine process stored it), the Overview's range and the customer card's next invoice follow it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from engine.clock import TestClock
from engine.console import seed_demo
from engine.store import Database
from engine.store.clock import StoredClock
from tests.console import history
from tests.ui.conftest import page, texts
from tests.ui.test_console_business import signed_in

pytestmark = pytest.mark.slow
# Months before the seeded history's last day and far from the day the tests run.
ENGINE_NOW = datetime(2026, 3, 31, 18, tzinfo=UTC)


@pytest.fixture
def history_db(tmp_path, monkeypatch) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/history.db"
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    monkeypatch.delenv("BILLING_TEST_CLOCK", raising=False)
    db = Database(url)
    db.migrate()
    with db.session() as s:
        seed_demo(s, clock=TestClock(ENGINE_NOW))
        history.seed(s)
    yield db
    db.dispose()


def _overview_today(at) -> date:  # type: ignore[no-untyped-def]
    picked = at.date_input(key="ov_range").value
    return picked[1]


def test_the_overview_ends_today_on_the_stored_test_clock(history_db: Database) -> None:
    StoredClock(history_db, ENGINE_NOW)  # what `billing serve --test-clock` stores
    at = page(signed_in("viewer"), "Overview")
    assert not at.exception, at.exception
    assert _overview_today(at) == date(2026, 3, 31)
    assert "Today is Mar 31, 2026 on the engine's clock." in texts(at, "caption")
    # The default range (5 months back to the engine's today) holds the seeded history: the
    # figures are those of Mar 31 2026 (hand-computed in tests/console/test_overview_figures.py).
    at.selectbox(key="ov_catalog").select("saas").run()
    assert {m.label: m.value for m in at.metric}["MRR"] == "$330.00"


def test_the_setting_gives_the_clock_before_any_engine_stored_it(history_db: Database, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BILLING_TEST_CLOCK", "2026-03-31T00:00:00Z")
    from engine.config import get_settings

    get_settings.cache_clear()
    try:
        at = page(signed_in("viewer"), "Overview")
        assert _overview_today(at) == date(2026, 3, 31)
    finally:
        get_settings.cache_clear()


def test_without_a_test_clock_the_console_reads_the_wall_clock(history_db: Database) -> None:
    at = page(signed_in("viewer"), "Overview")
    assert _overview_today(at) == datetime.now(UTC).date()


@pytest.fixture(scope="module")
def card_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.console import scenario

    url = f"sqlite:///{tmp_path_factory.mktemp('clock') / 'card.db'}"
    system = scenario.build(url)
    with system.db.session() as s:
        seed_demo(s, clock=system.clock)
    StoredClock(system.db, scenario.END)  # the system's clock, stored as `--test-clock` would
    system.db.dispose()
    return url


def test_the_next_invoice_counts_days_from_the_engine_clock(card_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BILLING_DATABASE_URL", card_url)
    monkeypatch.delenv("BILLING_TEST_CLOCK", raising=False)
    at = page(signed_in("viewer"), "Customers")
    at.text_input(key="cust_search").input("builder").run()
    # Bob's period runs Nov 1 - Dec 1 2026; the engine's clock stands at Nov 2 2026 09:00.
    assert "Next invoice on Dec 1, 2026 (in 29 days)" in texts(at, "caption")
