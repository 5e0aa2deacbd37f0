"""The console's publish and rollback (engine/console/store.py, the Publish page's engine
side): the role is checked before the draft is read or validated, and a publish or a rollback
writes the version and its audit entry through the operator layer
(engine/system/operations/draft_publishing.py and rollback.py), received as
`ConsoleOperations` (engine/system/console_operations.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import sales
from engine.clock import TestClock
from engine.console import ConsoleError, publish, rollback
from engine.store import Database
from engine.system.console_operations import console_operations
from engine.users import PermissionDenied, list_audit

SAAS = (Path(__file__).resolve().parents[2] / "catalogs/saas.yaml").read_text()
PUBLISHER = {"name": "publisher", "role": "publisher"}
OPS = console_operations()


def test_an_editor_hears_that_publishing_needs_the_publisher_role_before_the_draft_is_checked(
        sqlite_db: Database, clock: TestClock) -> None:
    with sqlite_db.session() as s, pytest.raises(PermissionDenied, match="needs the publisher role"):
        publish(s, {"name": "editor", "role": "editor"}, "catalog", "catalog: [", "", ops=OPS, clock=clock)
    with sqlite_db.read_session() as s:
        assert sales.list_versions(s) == []


def test_publish_and_rollback_write_versions_with_who_and_why_in_the_audit(
        sqlite_db: Database, clock: TestClock) -> None:
    steeper = SAAS.replace('amount: "49.00"', 'amount: "59.00"')
    with sqlite_db.session() as s:
        first = publish(s, PUBLISHER, "catalog", SAAS, "launch prices", accept_warnings=True,
                        require_simulation=False, ops=OPS, clock=clock)
        second = publish(s, PUBLISHER, "catalog", steeper, "pro base fee to 59", accept_warnings=True,
                         require_simulation=False, ops=OPS, clock=clock)
        back = rollback(s, PUBLISHER, "acme-analytics", 1, "too steep", ops=OPS, clock=clock)
    assert (first["version"], second["version"], back["version"], back["restored"]) == (1, 2, 3, 1)
    with sqlite_db.read_session() as s:
        audit = list_audit(s, "acme-analytics")
        current = dict(sales.get_version(s, "acme-analytics", None).document)
    assert [(a["action"], a["user"], a["version"], a["why"]) for a in audit] == [
        ("rollback", "publisher", 3, "too steep"),
        ("publish", "publisher", 2, "pro base fee to 59"),
        ("publish", "publisher", 1, "launch prices"),
    ]
    assert current["plans"]["pro"]["prices"][0]["amount"] == "49.00"  # version 1's content again
    with sqlite_db.session() as s, pytest.raises(ConsoleError, match="^nothing to publish: version 3 already has"):
        publish(s, PUBLISHER, "catalog", SAAS, "again", accept_warnings=True, require_simulation=False, ops=OPS, clock=clock)
