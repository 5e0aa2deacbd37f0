"""Access rules over HTTP: publishing a ruleset changes the next decision, without a restart."""

from __future__ import annotations

from engine import dunning
from engine.rules import publish_ruleset
from tests.api.conftest import Running


def test_publishing_access_rules_changes_the_next_decision(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    admin.post("/v1/customers", json={"id": "partner_1", "email": "p@x.io", "name": "P", "tags": ["partner"]})
    admin.post("/v1/subscriptions", json={"customer_id": "partner_1", "plan": "pro"})
    check = {"customer_id": "partner_1", "feature": "beta_ai"}
    before = product.post("/v1/access/check", json=check).json()
    assert (before["allowed"], before["reason"], before["rules"]) == (False, "not_in_plan", [])

    with running.system.db.session() as s:
        publish_ruleset(s, "rules/access.yaml", "test", comment="partner beta", clock=running.system.clock)
    running.system.sync_rules()  # what the refresher does every few seconds

    after = product.post("/v1/access/check", json=check).json()
    assert (after["allowed"], after["reason"], after["rules"]) == (True, "partner_beta", ["access/partner-beta"])


def test_suspended_account_keeps_only_its_data_export(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    admin.post("/v1/customers", json={"id": "late_1", "email": "l@x.io", "name": "L"})
    admin.post("/v1/subscriptions", json={"customer_id": "late_1", "plan": "pro"})
    with running.system.db.session() as s:
        publish_ruleset(s, "rules/access.yaml", "test", clock=running.system.clock)
        dunning.set_state(s, "late_1", "suspended", now=running.system.clock.now())
    running.system.sync_rules()
    running.system.access.invalidate("late_1")
    sso = product.post("/v1/access/check", json={"customer_id": "late_1", "feature": "sso"}).json()
    assert (sso["allowed"], sso["reason"], sso["rules"]) == (False, "payment_overdue", ["access/suspended-read-only"])
    export = product.post("/v1/access/check", json={"customer_id": "late_1", "feature": "data_export"}).json()
    assert (export["allowed"], export["reason"]) == (True, "export_while_suspended")


def test_a_rule_window_opening_changes_a_cached_decision_and_each_use_is_logged(running: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Decisions are memoised per customer snapshot; a rule whose validity starts later must
    still take effect at that instant, and every check a rule decided is in the decision log."""
    from datetime import timedelta

    from engine.rules import decisions_for

    admin, product = running.client(running.admin), running.client(running.product)
    admin.post("/v1/customers", json={"id": "launch_1", "email": "l@x.io", "name": "L"})
    admin.post("/v1/subscriptions", json={"customer_id": "launch_1", "plan": "pro"})
    ruleset = tmp_path / "access.yaml"
    ruleset.write_text(
        "ruleset: access\n"
        "rules:\n"
        "  - id: beta-launch-week\n"
        "    on: access.check\n"
        "    valid_from: '2026-11-02T09:00:00Z'\n"
        "    valid_until: '2026-11-09T09:00:00Z'\n"
        "    when: {feature: beta_ai}\n"
        "    then:\n"
        "      - allow: {reason: launch_week}\n"
    )
    with running.system.db.session() as s:
        publish_ruleset(s, ruleset, "test", clock=running.system.clock)
    running.system.sync_rules()
    check = {"customer_id": "launch_1", "feature": "beta_ai"}

    def ask() -> tuple[bool, str]:
        body = product.post("/v1/access/check", json=check).json()
        return body["allowed"], body["reason"]

    assert ask() == (False, "not_in_plan")
    assert ask() == (False, "not_in_plan")  # served from the memo
    clock = running.system.clock
    clock.set(clock.now() + timedelta(days=1))  # 2026-11-02T09:00: the window opens
    assert ask() == (True, "launch_week")
    assert ask() == (True, "launch_week")
    clock.set(clock.now() + timedelta(days=7))  # and closes
    assert ask() == (False, "not_in_plan")
    with running.system.db.read_session() as s:
        logged = [(d.rules, d.outcome) for d in decisions_for(s, "launch_1") if d.rules]
    assert logged == [(["access/beta-launch-week"], "allow")] * 2
