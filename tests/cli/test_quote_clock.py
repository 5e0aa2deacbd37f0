"""`billing quote --rules` prices the period of the CLI's clock (BILLING_TEST_CLOCK when set),
so the shipped launch promotion (Nov-Dec 2026) applies by that date, not by today's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from engine.config import get_settings
from tests.cli.runner import run


@pytest.fixture
def on_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.mark.parametrize(("clock", "rules"), [
    ("2026-11-15T09:00:00Z", [("promotions", "launch-2026")]),
    ("2027-03-15T09:00:00Z", []),
])
def test_quote_without_a_period_applies_the_rules_valid_on_the_test_clock(
        on_clock: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clock: str,
        rules: list[tuple[str, str]]) -> None:
    on_clock.setenv("BILLING_TEST_CLOCK", clock)
    get_settings.cache_clear()
    code, out, err = run(capsys, "quote", "--catalog", "catalogs/saas.yaml", "--plan", "pro", "--rules", "rules",
                         "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["period"]["start"][:7] == clock[:7]
    assert [(r["ruleset"], r["rule"]) for r in data["rules"]] == rules
