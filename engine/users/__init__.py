"""Console users: scrypt-hashed passwords, roles (viewer reads; editor edits drafts and
simulates; publisher publishes and rolls back; admin also manages users) and the audit of
every publish, rollback and user change (who, when, why).

    with db.session() as s:
        add_user(s, "ada", "publisher", "a long password")
        user = authenticate(s, "ada", "a long password")   # {"name": "ada", "role": "publisher"}
"""

from engine.users.admin import change_role, create_user, set_disabled
from engine.users.models import AuditEntry, ConsoleUser
from engine.users.service import (
    ACTIONS,
    DEMO_USERS,
    PERMISSIONS,
    ROLES,
    USER_ACTIONS,
    PermissionDenied,
    UserError,
    add_user,
    authenticate,
    can,
    hash_password,
    list_audit,
    list_users,
    record_audit,
    require,
    seed_demo_users,
    set_role,
    set_sign_in_disabled,
    verify_password,
)

__all__ = [
    "ACTIONS",
    "DEMO_USERS",
    "PERMISSIONS",
    "ROLES",
    "USER_ACTIONS",
    "AuditEntry",
    "ConsoleUser",
    "PermissionDenied",
    "UserError",
    "add_user",
    "authenticate",
    "can",
    "change_role",
    "create_user",
    "hash_password",
    "list_audit",
    "list_users",
    "record_audit",
    "require",
    "seed_demo_users",
    "set_disabled",
    "set_role",
    "set_sign_in_disabled",
    "verify_password",
]
