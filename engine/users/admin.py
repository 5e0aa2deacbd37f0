"""User management by an admin: add a user, change a role, disable or enable one. Every change
is recorded in the audit with who did it, to whom, and the role before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.users.models import ConsoleUser
from engine.users.service import ROLES, UserError, add_user, record_audit, require


def _find(session: Session, name: str) -> ConsoleUser:
    user = session.scalars(select(ConsoleUser).where(ConsoleUser.name == (name or "").strip())).first()
    if user is None:
        raise UserError("name", f"no user named {name!r}")
    return user


def _not_self(admin: dict[str, Any], name: str, what: str) -> None:
    # An admin who demotes or disables themselves may leave nobody to undo it.
    if admin["name"] == name:
        raise UserError("name", f"you cannot {what} yourself; ask another admin")


def create_user(session: Session, admin: dict[str, Any] | None, name: str, role: str, password: str,
                why: str = "", *, clock: Clock) -> dict[str, Any]:
    admin = require(admin, "manage_users")
    made = add_user(session, name, role, password, clock=clock)
    record_audit(session, admin, "user.add", "user", made["name"], why or f"added as {role}",
                 details={"role": role}, clock=clock)
    return made


def change_role(session: Session, admin: dict[str, Any] | None, name: str, role: str, why: str = "",
                *, clock: Clock) -> dict[str, Any]:
    admin = require(admin, "manage_users")
    if role not in ROLES:
        raise UserError("role", f"one of {', '.join(ROLES)}, not {role!r}")
    user = _find(session, name)
    _not_self(admin, user.name, "change the role of")
    before = user.role
    if before == role:
        raise UserError("role", f"{user.name} is already a {role}")
    user.role = role
    record_audit(session, admin, "user.role", "user", user.name, why or f"{before} -> {role}",
                 details={"before": before, "after": role}, clock=clock)
    return {"name": user.name, "role": user.role, "disabled": user.disabled}


def set_disabled(session: Session, admin: dict[str, Any] | None, name: str, disabled: bool, why: str = "",
                 *, clock: Clock) -> dict[str, Any]:
    """A disabled user can no longer sign in; their past actions stay in the audit."""
    admin = require(admin, "manage_users")
    user = _find(session, name)
    _not_self(admin, user.name, "disable" if disabled else "enable")
    if user.disabled == disabled:
        raise UserError("name", f"{user.name} is already {'disabled' if disabled else 'enabled'}")
    user.disabled = disabled
    action = "user.disable" if disabled else "user.enable"
    record_audit(session, admin, action, "user", user.name, why or action.split(".")[1] + "d",
                 details={"role": user.role}, clock=clock)
    return {"name": user.name, "role": user.role, "disabled": user.disabled}
