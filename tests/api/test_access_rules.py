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
        publish_ruleset(s, "rules/access.yaml", "test", comment="partner beta")
    running.system.sync_rules()  # what the refresher does every few seconds

    after = product.post("/v1/access/check", json=check).json()
    assert (after["allowed"], after["reason"], after["rules"]) == (True, "partner_beta", ["access/partner-beta"])


def test_suspended_account_keeps_only_its_data_export(running: Running) -> None:
    admin, product = running.client(running.admin), running.client(running.product)
    admin.post("/v1/customers", json={"id": "late_1", "email": "l@x.io", "name": "L"})
    admin.post("/v1/subscriptions", json={"customer_id": "late_1", "plan": "pro"})
    with running.system.db.session() as s:
        publish_ruleset(s, "rules/access.yaml", "test")
        dunning.set_state(s, "late_1", "suspended", now=running.system.clock.now())
    running.system.sync_rules()
    running.system.access.invalidate("late_1")
    sso = product.post("/v1/access/check", json={"customer_id": "late_1", "feature": "sso"}).json()
    assert (sso["allowed"], sso["reason"], sso["rules"]) == (False, "payment_overdue", ["access/suspended-read-only"])
    export = product.post("/v1/access/check", json={"customer_id": "late_1", "feature": "data_export"}).json()
    assert (export["allowed"], export["reason"]) == (True, "export_while_suspended")
