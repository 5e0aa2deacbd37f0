"""A quote's events over HTTP that take a priced `latest` or `weighted_sum` metric below 0 are
bad input (issue 16, "Crashes instead of answers"): a 422 naming the event's field, as the
CLI names its file and line (tests/hostile/test_cli_answers.py), never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from engine import sales
from tests.api.conftest import Running, running  # noqa: F401  (the fixture)
from tests.hostile.test_cli_answers import CATALOG


@pytest.fixture
def hosting(running: Running) -> httpx.Client:  # noqa: F811  (the imported fixture)
    with running.system.db.session() as s:
        sales.publish_catalog(s, _yaml(), "test", clock=running.system.clock)
    return running.client(running.admin)


def _yaml() -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load(CATALOG))


def _quote(client: httpx.Client, *events: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/quotes", json={"plan": "metal", "period": "2026-11-01/2026-12-01",
                                           "events": list(events)})


def _event(i: int, type_: str, day: int, **properties: Any) -> dict[str, Any]:
    return {"id": f"e{i}", "type": type_, "time": f"2026-11-{day:02d}T00:00:00Z", "properties": properties}


@pytest.mark.parametrize(("events", "field"), [
    ([_event(0, "seats.set", 2, count=3), _event(1, "seats.set", 5, count=-5)], "events[1].properties.count"),
    ([_event(0, "cores.changed", 2, delta=4), _event(1, "cores.changed", 9, delta=-6)], "events[1].properties.delta"),
])
def test_a_value_that_takes_a_priced_metric_below_zero_is_a_422_naming_it(
        hosting: httpx.Client, events: list[dict[str, Any]], field: str) -> None:
    r = _quote(hosting, *events)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert "negative" in r.json()["detail"] or "below 0" in r.json()["detail"]


def test_negative_changes_that_keep_the_total_positive_are_priced(hosting: httpx.Client) -> None:
    r = _quote(hosting, _event(0, "cores.changed", 2, delta=4), _event(1, "cores.changed", 16, delta=-2))
    assert r.status_code == 200, r.text
    assert r.json()["total"] not in ("0.00", None)
