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
            add_user(s, "ada", "viewer", "another one")
        with pytest.raises(UserError, match="role"):
            add_user(s, "eve", "admin", "long enough")
        with pytest.raises(UserError, match="password"):
            add_user(s, "eve", "viewer", "short")
        with pytest.raises(UserError, match="name"):
            add_user(s, "no spaces please", "viewer", "long enough")
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
        assert len(list_users(s)) == 4  # viewer, operator, editor, publisher
        with pytest.raises(PermissionDenied, match="needs the publisher role"):
            record_audit(s, {"name": "editor", "role": "editor"}, "publish", "catalog", "acme", "because")
        with pytest.raises(UserError, match="why"):
            record_audit(s, {"name": "publisher", "role": "publisher"}, "publish", "catalog", "acme", "  ")
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
