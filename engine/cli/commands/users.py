"""`billing user add` (the other user actions are engine/cli/commands/operator.py's). Moved from
engine/cli/commands/ops.py."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from engine.cli.clock import engine_clock
from engine.cli.commands.operator import register_user_actions
from engine.cli.errors import BadInput
from engine.config import get_settings


def register(sub: Any) -> None:
    """Console users: `user add`, and the actions engine/cli/commands/operator.py registers."""
    p = sub.add_parser("user", help="console users")
    u = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = u.add_parser("add", help="add a console user (the password is asked, or read from stdin)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=["viewer", "editor", "publisher"])
    a.add_argument("--password-stdin", action="store_true")
    a.set_defaults(func=run_user_add)
    register_user_actions(u)


def run_user_add(args: argparse.Namespace) -> int:
    from engine.cli.commands.serve import migrate_database
    from engine.store import database_of
    from engine.system.operations import OperationError, add_user

    settings = get_settings()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
    migrate_database(settings.database_url)
    try:
        with database_of(settings) as db, db.session() as session:
            add_user(session, args.name, args.role, password, clock=engine_clock(db))
    except OperationError as exc:
        raise BadInput(str(exc)) from None
    print(f"added {args.role} {args.name}")
    return 0
