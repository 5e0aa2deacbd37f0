"""Console users: scrypt-hashed passwords, roles (viewer reads; editor edits drafts and
simulates; publisher publishes and rolls back) and the audit of every publish and rollback
(who, when, why).

    with db.session() as s:
        add_user(s, "ada", "publisher", "a long password")
        user = authenticate(s, "ada", "a long password")   # {"name": "ada", "role": "publisher"}
"""

from engine.users.models import AuditEntry, ConsoleUser
from engine.users.service import (
    ACTIONS,
    DEMO_USERS,
    PERMISSIONS,
    ROLES,
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
    set_disabled,
    set_role,
    verify_password,
)

__all__ = [
    "ACTIONS",
    "DEMO_USERS",
    "PERMISSIONS",
    "ROLES",
    "AuditEntry",
    "ConsoleUser",
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
    "set_disabled",
    "set_role",
    "verify_password",
]
