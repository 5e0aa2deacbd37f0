"""Console users with scrypt-hashed passwords, their roles, and the publish/rollback audit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.users.models import AuditEntry, ConsoleUser

ROLES = ("viewer", "operator", "editor", "publisher", "admin")
# What each role may do; a role includes everything the roles before it may. `operate`:
# change a customer's subscription from the console (plan, coupon, cancellation, pause), grant
# them credit and set their spend budget;
# `manage_users`: add users, change roles, disable or enable them.
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "operate"}),
    "editor": frozenset({"read", "operate", "edit", "simulate"}),
    "publisher": frozenset({"read", "operate", "edit", "simulate", "publish", "rollback"}),
    "admin": frozenset({"read", "operate", "edit", "simulate", "publish", "rollback", "manage_users"}),
}
# What the audit records: publishes, rollbacks, operators' subscription changes and every
# change to a console user; and the permission each needs.
USER_ACTIONS = ("user.add", "user.role", "user.disable", "user.enable")
ACTION_PERMISSION = {"publish": "publish", "rollback": "rollback", "change_plan": "operate",
                     "apply_coupon": "operate", "cancel": "operate", "pause": "operate", "resume": "operate",
                     "grant_credit": "operate", "set_budget": "operate", "delete_budget": "operate",
                     **{action: "manage_users" for action in USER_ACTIONS}}
ACTIONS = tuple(ACTION_PERMISSION)
KINDS = ("catalog", "ruleset", "subscription", "user", "customer")


def permission_for(action: str) -> str:
    """The permission an audited action needs."""
    return ACTION_PERMISSION[action]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 8


class UserError(ValueError):
    """Bad input for a user operation, naming the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class PermissionDenied(PermissionError):
    def __init__(self, user: str, role: str, action: str) -> None:
        self.user, self.role, self.action = user, role, action
        needed = next((r for r in ROLES if action in PERMISSIONS[r]), "?")
        super().__init__(f"{user} ({role}) may not {action}: that needs the {needed} role")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def can(role: str, action: str) -> bool:
    return action in PERMISSIONS.get(role, frozenset())


def require(user: dict[str, Any] | None, action: str) -> dict[str, Any]:
    """The signed-in user when their role allows `action`; PermissionDenied otherwise."""
    if user is None:
        raise PermissionDenied("anonymous", "none", action)
    if not can(user["role"], action):
        raise PermissionDenied(user["name"], user["role"], action)
    return user


def _user_dict(u: ConsoleUser) -> dict[str, Any]:
    return {"name": u.name, "role": u.role, "disabled": u.disabled, "created_at": u.created_at.isoformat()}


def _check(name: str, role: str, password: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError("name", "1-100 letters, digits, '_', '.', '@' or '-', starting with a letter or digit")
    if role not in ROLES:
        raise UserError("role", f"one of {', '.join(ROLES)}, not {role!r}")
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise UserError("password", f"at least {MIN_PASSWORD} characters")


def add_user(
    session: Session, name: str, role: str, password: str, *, clock: Clock, replace: bool = False
) -> dict[str, Any]:
    """Create a console user (or, with `replace`, reset an existing one's role and password)."""
    _check(name, role, password)
    existing = session.scalars(select(ConsoleUser).where(ConsoleUser.name == name)).first()
    if existing is not None and not replace:
        raise UserError("name", f"a user named {name!r} already exists")
    now = clock.now()
    if existing is None:
        existing = ConsoleUser(name=name, role=role, password_hash=hash_password(password), created_at=now)
        session.add(existing)
    else:
        existing.role, existing.password_hash, existing.disabled = role, hash_password(password), False
    session.flush()
    return _user_dict(existing)


def set_role(session: Session, name: str, role: str) -> dict[str, Any]:
    if role not in ROLES:
        raise UserError("role", f"one of {', '.join(ROLES)}, not {role!r}")
    user = _user_named(session, name)
    user.role = role
    return _user_dict(user)


def set_sign_in_disabled(session: Session, name: str, disabled: bool) -> dict[str, Any]:
    """Stop (or allow again) a user's sign-in; their audit entries stay as they are."""
    user = _user_named(session, name)
    user.disabled = disabled
    return _user_dict(user)


def _user_named(session: Session, name: str) -> ConsoleUser:
    """The user to change; an unknown name raises, naming the field."""
    user = session.scalars(select(ConsoleUser).where(ConsoleUser.name == name)).first()
    if user is None:
        raise UserError("name", f"no user named {name!r}")
    return user


def authenticate(session: Session, name: str, password: str) -> dict[str, Any] | None:
    """The user's {name, role} when the password matches; None otherwise (no hint which part was wrong)."""
    password = password or ""
    user = session.scalars(select(ConsoleUser).where(ConsoleUser.name == (name or "").strip())).first()
    if user is None:
        # Same work either way, so a wrong name answers as slowly as a wrong password.
        verify_password(password, hash_password("timing-equaliser"))
        return None
    if user.disabled or not verify_password(password, user.password_hash):
        return None
    return {"name": user.name, "role": user.role}


def list_users(session: Session) -> list[dict[str, Any]]:
    return [_user_dict(u) for u in session.scalars(select(ConsoleUser).order_by(ConsoleUser.name))]


def record_audit(
    session: Session,
    user: dict[str, Any],
    action: str,
    kind: str,
    target: str,
    why: str,
    *,
    version: int | None = None,
    details: dict[str, Any] | None = None,
    clock: Clock,
) -> dict[str, Any]:
    """Record a publish, a rollback, an operator's change to a subscription or a user change.
    The user must hold the role for it, and say why."""
    if action not in ACTIONS:
        raise UserError("action", f"one of {', '.join(ACTIONS)}")
    if kind not in KINDS:
        raise UserError("kind", f"one of {', '.join(KINDS)}")
    require(user, permission_for(action))
    if not why or not why.strip():
        raise UserError("why", f"a {action} needs a comment saying why")
    entry = AuditEntry(
        at=clock.now(),
        user=user["name"],
        role=user["role"],
        action=action,
        kind=kind,
        target=target,
        version=version,
        why=why.strip(),
        details=details or {},
    )
    session.add(entry)
    session.flush()
    return audit_to_dict(entry)


def audit_to_dict(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "user": e.user,
        "role": e.role,
        "action": e.action,
        "kind": e.kind,
        "target": e.target,
        "version": e.version,
        "why": e.why,
        "details": dict(e.details or {}),
    }


def list_audit(session: Session, target: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if target:
        stmt = stmt.where(AuditEntry.target == target)
    return [audit_to_dict(e) for e in session.scalars(stmt)]


DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("viewer", "viewer", "viewer-demo"),
    ("operator", "operator", "operator-demo"),
    ("editor", "editor", "editor-demo"),
    ("publisher", "publisher", "publisher-demo"),
    ("admin", "admin", "admin-demo"),
)


def seed_demo_users(session: Session, *, clock: Clock) -> list[tuple[str, str, str]]:
    """The demo sign-ins (name, role, password), created when missing. Returns all of them."""
    existing = {u.name for u in session.scalars(select(ConsoleUser))}
    for name, role, password in DEMO_USERS:
        if name not in existing:
            add_user(session, name, role, password, clock=clock)
    return list(DEMO_USERS)


__all__ = [
    "ACTIONS",
    "DEMO_USERS",
    "PERMISSIONS",
    "ROLES",
    "PermissionDenied",
    "UserError",
    "add_user",
    "authenticate",
    "can",
    "hash_password",
    "list_audit",
    "list_users",
    "record_audit",
    "require",
    "seed_demo_users",
    "set_role",
    "verify_password",
]
