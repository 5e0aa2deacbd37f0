"""The Webhooks page of the console (AppTest): a publisher registers an endpoint and sees its
secret once, reads the delivery log and replays a delivery; bad input is a message naming the
field and writes nothing; a viewer only reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from streamlit.testing.v1 import AppTest

from engine import webhooks
from engine.events import Envelope
from engine.store import Database, mark_processed
from tests.ui.conftest import page, texts


@pytest.fixture(autouse=True)
def local_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_WEBHOOKS_ALLOW_HTTP", "true")
    monkeypatch.setenv("BILLING_WEBHOOKS_ALLOW_PRIVATE", "true")


def _register(at: AppTest, url: str, events: list[str]) -> AppTest:
    at.text_input(key="webhooks_url").input(url)
    at.multiselect(key="webhooks_events").set_value(events)
    return at.button(key="webhooks_register_submit").click().run()


def test_register_read_the_log_and_replay(app: Callable[[str | None], AppTest], console_db: Database) -> None:
    at = page(app("publisher"), "Webhooks")
    at = _register(at, "http://127.0.0.1:9/hooks", ["invoice.*"])
    assert any("signing secret, shown once: whsec_" in t for t in texts(at, "success")), texts(at, "error")
    with console_db.session() as s:
        [endpoint] = webhooks.list_endpoints(s)
        mark_processed(s, webhooks.CONSUMER, "evt_ui_1", datetime(2026, 11, 1, tzinfo=UTC))
        webhooks.fan_out(s, Envelope(id="evt_ui_1", type="invoice.paid", customer_id="cus_1",
                                     time=datetime(2026, 11, 1, tzinfo=UTC), properties={}))
    at.run()
    with console_db.read_session() as s:
        [delivery] = webhooks.list_deliveries(s, endpoint.id)
    at.text_input(key="webhooks_delivery").input(delivery["id"])
    at.button(key="webhooks_replay").click().run()
    assert any(f"Replaying {delivery['id']}" in t for t in texts(at, "success")), texts(at, "error")
    at.text_input(key="webhooks_delivery").input("wd_nothing")
    at.button(key="webhooks_replay").click().run()
    assert any("delivery_id" in t for t in texts(at, "error"))
    with console_db.read_session() as s:
        assert len(webhooks.list_deliveries(s, endpoint.id)) == 2


def test_bad_input_names_the_field(app: Callable[[str | None], AppTest], console_db: Database,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_WEBHOOKS_ALLOW_HTTP", "false")
    at = _register(page(app("publisher"), "Webhooks"), "http://127.0.0.1:9/hooks", ["*"])
    assert any(t.startswith("url:") and "https" in t for t in texts(at, "error")), texts(at, "error")
    with console_db.read_session() as s:
        assert webhooks.list_endpoints(s) == []


def test_a_viewer_only_reads(app: Callable[[str | None], AppTest]) -> None:
    at = page(app("viewer"), "Webhooks")
    assert any("publisher role" in t for t in texts(at, "warning"))
