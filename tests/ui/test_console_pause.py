"""Pausing from the customer card (AppTest): an operator pauses and withdraws the pause through
the engine operations the HTTP API calls, recorded in the audit; a viewer is refused. The
card's database runs on the engine's stored test clock (Nov 2 2026), as `--test-clock` would."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from engine.store import Database
from engine.users import list_audit
from tests.ui.conftest import page, texts
from tests.ui.test_console_business import signed_in
from tests.ui.test_console_clock import card_url  # noqa: F401 (the module's fixture)

pytestmark = pytest.mark.slow


@pytest.fixture
def card_db(card_url: str, tmp_path, monkeypatch) -> Iterator[Database]:  # type: ignore[no-untyped-def]  # noqa: F811
    """A copy of the card scenario for one test: the test changes it."""
    copy = tmp_path / "card.db"
    shutil.copy(card_url.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    monkeypatch.delenv("BILLING_TEST_CLOCK", raising=False)
    db = Database(url)
    yield db
    db.dispose()


def _act(at, action: str, why: str):  # type: ignore[no-untyped-def]
    at.radio(key="act_kind").set_value(action)
    at.text_input(key="act_why").input(why)
    at.button(key="FormSubmitter:cust_action-Apply").click().run()
    assert not at.exception, at.exception
    return at


def test_an_operator_pauses_then_withdraws_the_pause(card_db: Database) -> None:
    at = page(signed_in("operator"), "Customers")
    at.text_input(key="cust_search").input("builder").run()
    _act(at, "Pause", "")
    assert "why: say why: the change is recorded in the audit" in texts(at, "error")
    _act(at, "Pause", "closed for the summer")
    assert "Pauses on Dec 1, 2026, when the period paid for ends." in texts(at, "success")
    assert "pauses at period end" in "\n".join(texts(at, "markdown"))
    _act(at, "Pause", "asked twice")  # already asked: nothing changes, nothing fails
    _act(at, "Resume", "reopened early")
    assert "The pause is withdrawn: the subscription renews as usual." in texts(at, "success")
    assert "pauses at period end" not in "\n".join(texts(at, "markdown"))
    with card_db.read_session() as s:
        audit = [(e["user"], e["action"], e["why"]) for e in list_audit(s)]
    assert ("operator", "pause", "closed for the summer") in audit
    assert ("operator", "resume", "reopened early") in audit


def test_resuming_what_is_not_paused_is_refused_in_words(card_db: Database) -> None:
    at = page(signed_in("operator"), "Customers")
    at.text_input(key="cust_search").input("builder").run()
    _act(at, "Resume", "by mistake")
    assert any("is not paused" in e for e in texts(at, "error"))
    with card_db.read_session() as s:
        assert list_audit(s) == []


def test_a_viewer_cannot_pause(card_db: Database) -> None:
    at = page(signed_in("viewer"), "Customers")
    at.text_input(key="cust_search").input("builder").run()
    assert any("Changing a subscription needs the operator role" in c for c in texts(at, "caption"))
    assert not [b for b in at.button if b.key == "FormSubmitter:cust_action-Apply"]
