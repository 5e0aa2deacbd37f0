"""Changing the plan and cancelling from the customer card (AppTest): an operator moves Bob
Builder from Pro to Enterprise and cancels at the period end through the engine operations the
HTTP API calls; the store holds the new plan and the cancel flag, the audit who and why; a
viewer gets no form. The card runs on the engine's stored test clock (Nov 2 2026)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.sales.models import Subscription
from engine.store import Database
from engine.users import list_audit
from tests.ui.conftest import page, texts
from tests.ui.test_console_business import signed_in
from tests.ui.test_console_clock import card_url  # noqa: F401 (the fixture card_db needs)
from tests.ui.test_console_pause import _act, card_db  # noqa: F401 (the module's fixture)

pytestmark = pytest.mark.slow


def _bob(db: Database) -> tuple[str, bool]:
    with db.read_session() as s:
        sub = s.scalars(select(Subscription).where(Subscription.customer_id == "cus_bob")).one()
        return sub.plan_id, sub.cancel_at_period_end


def test_an_operator_changes_the_plan_then_cancels_at_the_period_end(card_db: Database) -> None:  # noqa: F811
    at = page(signed_in("operator"), "Customers")
    at.text_input(key="cust_search").input("builder").run()
    assert _bob(card_db) == ("pro", False)
    at.selectbox(key="act_plan").select("enterprise")
    _act(at, "Change plan", "")  # no reason: refused in place, nothing changes
    assert "why: say why: the change is recorded in the audit" in texts(at, "error")
    assert _bob(card_db) == ("pro", False)
    at.selectbox(key="act_plan").select("enterprise")
    _act(at, "Change plan", "needs SSO for the whole team")
    assert "Plan changed to enterprise now." in texts(at, "success")  # an upgrade: now, prorated
    assert "**Enterprise** (acme-analytics)" in "\n".join(texts(at, "markdown"))
    assert _bob(card_db) == ("enterprise", False)
    at.radio(key="act_at").set_value("at the period end")
    _act(at, "Cancel", "moving to a competitor")
    assert "Cancels at the period end." in texts(at, "success")
    assert "cancels at period end" in "\n".join(texts(at, "markdown"))
    assert _bob(card_db) == ("enterprise", True)
    with card_db.read_session() as s:
        audit = [(e["user"], e["action"], e["why"], e["details"]) for e in list_audit(s)]
    assert [a[:3] for a in audit] == [
        ("operator", "cancel", "moving to a competitor"),
        ("operator", "change_plan", "needs SSO for the whole team"),
    ]
    assert audit[0][3]["at"] == "period_end" and audit[1][3]["plan"] == "enterprise"


def test_a_viewer_cannot_change_the_plan_or_cancel(card_db: Database) -> None:  # noqa: F811
    at = page(signed_in("viewer"), "Customers")
    at.text_input(key="cust_search").input("builder").run()
    assert any("Changing a subscription needs the operator role" in c for c in texts(at, "caption"))
    keys = {w.key for w in [*at.radio, *at.selectbox, *at.button]}
    assert not keys & {"act_kind", "act_plan", "act_at", "FormSubmitter:cust_action-Apply"}
    assert _bob(card_db) == ("pro", False)
