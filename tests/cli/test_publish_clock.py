"""`billing publish` and `billing rollback` stamp versions with the engine's clock (the stored
test clock, else BILLING_TEST_CLOCK), never the wall clock: publishing takes a clock, and the
CLI hands it engine/cli/clock.py's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import rules, sales
from engine.store import Database
from engine.store.clock import StoredClock
from tests.cli.runner import run

ROOT = Path(__file__).resolve().parents[2]
# Far from any day the tests run on: a wall-clock stamp cannot match it by chance.
START = datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.fixture(autouse=True)
def test_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_TEST_CLOCK", START.isoformat())  # before `database` reads the settings


def test_publish_and_rollback_are_stamped_with_the_engines_test_clock(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "publish", str(ROOT / "catalogs/saas.yaml"), str(ROOT / "rules/promotions.yaml"))
    assert code == 0, err
    with database.read_session() as s:
        assert [v["published_at"] for v in sales.list_versions(s, "acme-analytics")] == [START.isoformat()]
        assert [r.published_at for r in rules.ruleset_history(s, "promotions")] == [START]

    # A running engine moved its stored clock: the next publish and rollback are on its time.
    later = START + timedelta(days=3, hours=2)
    StoredClock(database, START).set(later)
    v2 = tmp_path / "saas.yaml"
    v2.write_text((ROOT / "catalogs/saas.yaml").read_text().replace('amount: "49.00"', 'amount: "59.00"', 1))
    assert run(capsys, "publish", str(v2))[0] == 0
    code, _, err = run(capsys, "rollback", "acme-analytics", "--to", "1", "--why", "price back")
    assert code == 0, err
    with database.read_session() as s:
        stamps = [v["published_at"] for v in sales.list_versions(s, "acme-analytics")]
    assert sorted(stamps) == [START.isoformat(), later.isoformat(), later.isoformat()]
