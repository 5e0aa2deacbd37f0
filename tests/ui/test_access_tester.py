"""The console's access tester gives the live API's decision: plan, usage, dunning state and
the published access rules, with the explanation, and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import dunning, sales
from engine.access import UnknownFeature
from engine.clock import TestClock
from engine.config import Settings
from engine.console import AccessTester
from engine.rules import load_ruleset_text, publish_ruleset, rollback_ruleset
from engine.store import Database, OutboxEvent
from engine.system import access_readers, build_system
from tests.ui.conftest import page, texts

CUSTOMERS = {"plain": ("pro", []), "partner": ("pro", ["partner"]), "late": ("pro", []), "small": ("free", [])}


def seed(db: Database, clock: TestClock) -> None:
    with db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "test", clock=clock)
        for cid, (plan, tags) in CUSTOMERS.items():
            sales.create_customer(s, {"id": cid, "email": f"{cid}@x.io", "name": cid, "tags": tags}, clock=clock)
            sales.create_subscription(s, cid, plan, clock=clock)
    with db.session() as s:
        dunning.set_state(s, "late", "suspended", now=clock.now())
    events = [
        {
            "id": f"e{i}",
            "type": "api.request",
            "customer_id": "small",
            "time": (clock.now() + timedelta(minutes=1)).isoformat(),
        }
        for i in range(998)
    ]
    clock.set(clock.now() + timedelta(minutes=2))
    with db.session() as s:
        sales.ingest_events(s, events, clock=clock)


def publish_access(db: Database, clock: TestClock) -> None:
    with db.session() as s:
        publish_ruleset(s, "rules/access.yaml", "test", comment="access rules", clock=clock)


def outbox_count(db: Database) -> int:
    with db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


@pytest.fixture
def world(tmp_path):  # type: ignore[no-untyped-def]
    clock = TestClock(datetime.now(UTC).replace(microsecond=0))
    db = Database(f"sqlite:///{tmp_path}/t.db")
    import engine.models  # noqa: F401

    db.migrate()
    seed(db, clock)
    yield db, clock
    db.dispose()


def test_rules_change_the_testers_answer(world) -> None:  # type: ignore[no-untyped-def]
    db, clock = world
    tester = AccessTester(db, clock, access_readers())
    # Before any access ruleset: the plan alone decides.
    beta = tester.check("partner", "beta_ai")
    assert (beta.decision.allowed, beta.decision.reason, beta.decision.rules) == (False, "not_in_plan", ())
    export = tester.check("late", "data_export")
    assert (export.decision.allowed, export.decision.reason) == (False, "payment_overdue")
    assert "no access ruleset is published" in " ".join(export.explanation())

    publish_access(db, clock)
    beta = tester.check("partner", "beta_ai")
    assert (beta.decision.allowed, beta.decision.reason, beta.decision.rules) == (
        True,
        "partner_beta",
        ("access/partner-beta",),
    )
    assert beta.plan_answer.reason == "not_in_plan"
    assert "Rule access/partner-beta asked to allow (partner_beta)." in beta.explanation()
    # A customer without the tag is still refused the beta.
    assert tester.check("plain", "beta_ai").decision.reason == "not_in_plan"
    # Suspended: only the data export stays open.
    export = tester.check("late", "data_export")
    assert (export.decision.allowed, export.decision.reason, export.decision.rules) == (
        True,
        "export_while_suspended",
        ("access/export-while-suspended",),
    )
    sso = tester.check("late", "sso")
    assert (sso.decision.allowed, sso.decision.rules) == (False, ("access/suspended-read-only",))
    # Quotas: limit, used and remaining as the API gives them.
    api = tester.check("small", "api", Decimal(5))
    assert api.to_dict() | {"offer": None} == {
        "allowed": False,
        "feature": "api",
        "reason": "quota_exceeded",
        "limit": 1000,
        "used": 998,
        "remaining": 2,
        "plan": "free",
        "rules": [],
        "offer": None,
        "decision_id": None,  # the tester logs nothing, so its answers name no log entry
    }
    assert api.to_dict()["offer"] == {"plan": "pro", "name": "Pro"}
    assert tester.check("small", "api", Decimal(2)).decision.allowed

    # Rolling the ruleset back to nothing-for-partners changes the answer again.
    changed = Path("rules/access.yaml").read_text().replace("contains: partner", "contains: vip")
    with db.session() as s:
        publish_ruleset(s, load_ruleset_text(changed, "access.yaml"), "test", clock=clock)
    assert tester.check("partner", "beta_ai").decision.reason == "not_in_plan"
    with db.session() as s:
        rollback_ruleset(s, "access", 1, "test", "vip was a mistake", clock=clock)
    assert tester.check("partner", "beta_ai").decision.reason == "partner_beta"

    with pytest.raises(UnknownFeature):
        tester.check("plain", "teleport")
    with pytest.raises(ValueError, match="quantity"):
        tester.check("plain", "sso", Decimal(0))


def test_same_decisions_as_the_api(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db, clock = world
    publish_access(db, clock)
    before = outbox_count(db)
    tester = AccessTester(db, clock, access_readers())
    answers = {
        (cid, f, q): tester.check(cid, f, Decimal(q)).to_dict()
        for cid in [*CUSTOMERS, "nobody"]
        for f in ("sso", "api", "beta_ai", "data_export", "projects")
        for q in (1, 5)
    }
    assert outbox_count(db) == before  # read-only: no access.denied, no threshold
    system = build_system(Settings(database_url=db.url, access_denial_buffer_ms=0), clock=clock, db=db)
    for (cid, f, q), got in answers.items():
        # The same answer; the API's denials also name their decision-log entry.
        assert system.access.check(cid, f, Decimal(q)).to_dict() | {"decision_id": None} == got, (cid, f, q)


def test_access_tester_page(app, console_db) -> None:  # type: ignore[no-untyped-def]
    clock = TestClock(datetime.now(UTC).replace(microsecond=0))
    seed(console_db, clock)
    publish_access(console_db, clock)
    at = page(app("viewer"), "Access tester")

    def ask(cid: str, feature: str, qty: str = "1") -> None:
        at.selectbox(key="acc_customer").select(cid)
        at.text_input(key="acc_feature").input(feature)
        at.text_input(key="acc_qty").input(qty)
        at.button(key="acc_go").click().run()
        assert not at.exception, at.exception

    ask("partner", "beta_ai")
    assert "Allowed: partner_beta" in texts(at, "success")
    assert any("Rule access/partner-beta asked to allow" in m for m in texts(at, "markdown"))
    ask("late", "sso")
    assert "Denied: payment_overdue" in texts(at, "error")
    ask("late", "data_export")
    assert "Allowed: export_while_suspended" in texts(at, "success")
    ask("small", "api", "5")
    assert "Denied: quota_exceeded" in texts(at, "error")
    assert any("Limit 1,000, used 998, remaining 2." in m for m in texts(at, "markdown"))
    ask("plain", "teleport")
    assert any("Unknown feature 'teleport'" in e for e in texts(at, "error"))
    ask("plain", "sso", "-1")
    assert "Give a feature and a quantity above zero." in texts(at, "error")
