"""The operator's CLI doors that share their operation with the admin HTTP routes
(tests/api/test_operators_http.py): rollback, migrate-subscriptions, user role/disable/enable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import sales, users
from engine.clock import SystemClock
from engine.store import Database
from tests.cli.runner import run

ROOT = Path(__file__).resolve().parents[2]
SAAS = (ROOT / "catalogs/saas.yaml").read_text()


def test_rollback_and_migrate_subscriptions(database: Database, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    v2 = tmp_path / "saas.yaml"
    v2.write_text(SAAS.replace('amount: "49.00"', 'amount: "59.00"', 1))
    assert run(capsys, "publish", str(ROOT / "catalogs/saas.yaml"))[0] == 0
    with database.session() as s:
        sales.create_customer(s, {"id": "cus_c", "email": "c@example.com", "name": "C"}, clock=SystemClock())
        sub = sales.create_subscription(s, "cus_c", "pro", clock=SystemClock())
    assert run(capsys, "publish", str(v2))[0] == 0

    code, out, err = run(capsys, "migrate-subscriptions", "acme-analytics", "--dry-run")
    assert code == 0, err
    assert [r["subscription_id"] for r in json.loads(out)["would_migrate"]] == [sub["id"]]
    code, out, err = run(capsys, "migrate-subscriptions", "acme-analytics", "--subscription", "sub_nope")
    assert (code, out) == (1, "") and err.startswith("billing: --subscription: 'sub_nope' is not an active")
    code, out, err = run(capsys, "migrate-subscriptions", "acme-analytics")
    assert code == 0 and [r["subscription_id"] for r in json.loads(out)["migrated"]] == [sub["id"]]

    assert run(capsys, "rollback", "acme-analytics", "--to", "9", "--why", "x") == (
        1, "", "billing: --to: catalog 'acme-analytics' has no version 9\n")
    code, out, err = run(capsys, "rollback", "acme-analytics", "--to", "1", "--why", "too steep")
    assert code == 0, err
    assert (json.loads(out)["version"], json.loads(out)["restored"]) == (3, 1)
    with database.read_session() as s:
        [entry] = users.list_audit(s, "acme-analytics")
    assert entry["action"] == "rollback" and entry["user"].startswith("cli:")


def test_user_role_disable_and_enable(database: Database, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert run(capsys, "user", "add", "ada", "--role", "viewer", "--password-stdin")[0] == 0
    assert run(capsys, "user", "role", "nobody", "editor") == (1, "", "billing: NAME: no user named 'nobody'\n")
    code, out, _ = run(capsys, "user", "role", "ada", "editor")
    assert code == 0 and json.loads(out)["role"] == "editor"
    assert run(capsys, "user", "disable", "ada")[0] == 0
    with database.session() as s:
        assert users.authenticate(s, "ada", "a long password") is None
    assert run(capsys, "user", "enable", "ada")[0] == 0
    with database.session() as s:
        assert users.authenticate(s, "ada", "a long password") == {"name": "ada", "role": "editor"}
