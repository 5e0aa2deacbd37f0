"""Console users: add one, change a role, disable or enable sign-in (`billing user ...`,
`POST /v1/users`, `PATCH /v1/users/{name}`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from engine import users
from engine.clock import Clock
from engine.errors import OperationError


def add_user(session: Session, name: str, role: str, password: str, *, clock: Clock) -> dict[str, Any]:
    try:
        return users.add_user(session, name, role, password, clock=clock)
    except users.UserError as exc:
        if "already exists" in exc.message:
            raise OperationError(exc.field, exc.message, "conflict") from None
        raise OperationError(exc.field, exc.message) from None


def change_user(session: Session, name: str, *, role: str | None = None,
                disabled: bool | None = None) -> dict[str, Any]:
    """A new role and/or sign-in disabled or enabled; both checked before either is written."""
    if role is None and disabled is None:
        raise OperationError("role", "give a role or disabled (or both)")
    try:
        # The role first (set_role checks it before writing anything), then sign-in; the
        # answer is the user after the last change.
        steps: list[tuple[Callable[[Session, str, Any], dict[str, Any]], object]] = [
            (users.set_role, role), (users.set_sign_in_disabled, disabled)]
        out = [change(session, name, value) for change, value in steps if value is not None]
    except users.UserError as exc:
        raise OperationError(exc.field, exc.message, "not_found" if exc.field == "name" else "invalid") from None
    return out[-1]


def permitted(user: dict[str, Any] | None, action: str) -> dict[str, Any]:
    """The signed-in console user when their role allows `action` (PermissionDenied
    otherwise): a door's first check, before it reads or validates anything, so a user who
    may not act hears that first. The audited operations check the role again themselves."""
    return users.require(user, action)
