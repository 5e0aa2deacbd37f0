"""Console users: hashed passwords, roles, the publish/rollback audit."""

from __future__ import annotations

import pytest

from engine.users import (
    PermissionDenied,
    UserError,
    add_user,
    authenticate,
    can,
    list_audit,
    list_users,
    record_audit,
    seed_demo_users,
)
from engine.users.models import ConsoleUser


def test_add_and_authenticate(sqlite_db, clock) -> None:  # type: ignore[no-untyped-def]
    with sqlite_db.session() as s:
        add_user(s, "ada", "publisher", "correct horse", clock=clock)
    with sqlite_db.session() as s:
        stored = s.query(ConsoleUser).one()
        assert stored.password_hash.startswith("scrypt$") and "correct horse" not in stored.password_hash
        assert authenticate(s, "ada", "correct horse") == {"name": "ada", "role": "publisher"}
        assert authenticate(s, "ada", "wrong horse") is None
        assert authenticate(s, "bob", "correct horse") is None
        with pytest.raises(UserError, match="already exists"):
            add_user(s, "ada", "viewer", "another one", clock=clock)
        with pytest.raises(UserError, match="role"):
            add_user(s, "eve", "owner", "long enough", clock=clock)
        with pytest.raises(UserError, match="password"):
            add_user(s, "eve", "viewer", "short", clock=clock)
        with pytest.raises(UserError, match="name"):
            add_user(s, "no spaces please", "viewer", "long enough", clock=clock)
        assert [u["name"] for u in list_users(s)] == ["ada"]


def test_roles() -> None:
    assert can("viewer", "read") and not can("viewer", "edit") and not can("viewer", "simulate")
    assert can("editor", "edit") and can("editor", "simulate") and not can("editor", "publish")
    assert can("publisher", "publish") and can("publisher", "rollback")
    assert can("operator", "operate") and not can("operator", "edit") and not can("viewer", "operate")
    assert can("editor", "operate") and can("publisher", "operate")
    assert not can("nobody", "read")


def test_audit_needs_role_and_reason(sqlite_db, clock) -> None:  # type: ignore[no-untyped-def]
    with sqlite_db.session() as s:
        seed_demo_users(s, clock=clock)
        seed_demo_users(s, clock=clock)  # idempotent
        assert len(list_users(s)) == 5  # viewer, operator, editor, publisher, admin
        with pytest.raises(PermissionDenied, match="needs the publisher role"):
            record_audit(s, {"name": "editor", "role": "editor"}, "publish", "catalog", "acme", "because", clock=clock)
        with pytest.raises(UserError, match="why"):
            record_audit(s, {"name": "publisher", "role": "publisher"}, "publish", "catalog", "acme", "  ", clock=clock)
        record_audit(
            s,
            {"name": "publisher", "role": "publisher"},
            "publish",
            "catalog",
            "acme",
            "new prices",
            version=2,
            clock=clock,
        )
        record_audit(
            s,
            {"name": "publisher", "role": "publisher"},
            "rollback",
            "catalog",
            "acme",
            "too steep",
            version=3,
            clock=clock,
        )
    with sqlite_db.session() as s:
        entries = list_audit(s, "acme")
        assert [(e["action"], e["user"], e["why"], e["version"]) for e in entries] == [
            ("rollback", "publisher", "too steep", 3),
            ("publish", "publisher", "new prices", 2),
        ]
        assert entries[0]["at"].startswith("2026-01-01")


def test_an_admin_manages_users_and_every_change_is_audited(sqlite_db, clock) -> None:  # type: ignore[no-untyped-def]
    from engine.users import change_role, create_user, set_disabled

    admin = {"name": "admin", "role": "admin"}
    with sqlite_db.session() as s:
        seed_demo_users(s, clock=clock)
        assert can("admin", "publish") and can("admin", "manage_users") and not can("publisher", "manage_users")
        with pytest.raises(PermissionDenied, match="needs the admin role"):
            create_user(s, {"name": "publisher", "role": "publisher"}, "eve", "editor", "long enough pw", clock=clock)
        create_user(s, admin, "grace", "viewer", "long enough pw", "new analyst", clock=clock)
        change_role(s, admin, "grace", "editor", clock=clock)
        set_disabled(s, admin, "grace", True, "left the team", clock=clock)
        with pytest.raises(UserError, match="yourself"):
            set_disabled(s, admin, "admin", True, clock=clock)
        with pytest.raises(UserError, match="already a editor"):
            change_role(s, admin, "grace", "editor", clock=clock)
        assert authenticate(s, "grace", "long enough pw") is None  # disabled: no sign-in
        audit = list_audit(s, "grace")
    assert [(a["action"], a["user"], a["why"], a["details"]) for a in audit] == [
        ("user.disable", "admin", "left the team", {"role": "editor"}),
        ("user.role", "admin", "viewer -> editor", {"before": "viewer", "after": "editor"}),
        ("user.add", "admin", "new analyst", {"role": "viewer"}),
    ]
