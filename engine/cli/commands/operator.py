"""The operator's state changes besides publish and API keys: roll back a catalog or ruleset,
move subscriptions to a new catalog version, change or disable a console user. Each calls
the `engine.system.operations` function the admin HTTP route calls (engine/api/routes/operators.py)."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.cli.commands.serve import require_migrated
from engine.cli.errors import BadInput
from engine.config import get_settings


def register(sub: Any) -> None:
    p = sub.add_parser("rollback", help="make an earlier catalog (or ruleset) version current again")
    p.add_argument("name")
    p.add_argument("--to", dest="to_version", type=int, required=True, metavar="VERSION")
    p.add_argument("--why", required=True, help="kept in the audit")
    p.add_argument("--kind", default="catalog", choices=["catalog", "ruleset"])
    p.set_defaults(func=run_rollback)

    p = sub.add_parser("migrate-subscriptions", help="move grandfathered subscriptions to a catalog version "
                       "from their next period on")
    p.add_argument("catalog")
    p.add_argument("--version", type=int, default=None, help="default: the latest")
    p.add_argument("--plan", default=None, help="only the subscriptions of this plan")
    p.add_argument("--subscription", action="append", default=None, dest="subscription_ids", metavar="ID")
    p.add_argument("--dry-run", action="store_true", help="only say what would move")
    p.set_defaults(func=run_migrate_subscriptions)


def register_user_actions(users: Any) -> None:
    """`billing user role NAME ROLE`, `billing user disable NAME`, `billing user enable NAME`."""
    r = users.add_parser("role", help="change a console user's role")
    r.add_argument("name")
    r.add_argument("role", choices=["viewer", "editor", "publisher"])
    r.set_defaults(func=run_user_change, disabled=None)
    for action, disabled in (("disable", True), ("enable", False)):
        d = users.add_parser(action, help=f"{action} a console user's sign-in")
        d.add_argument("name")
        d.set_defaults(func=run_user_change, role=None, disabled=disabled)


def _database() -> Any:
    from engine.store import database_of

    settings = get_settings()
    require_migrated(settings.database_url)
    return database_of(settings)


@contextmanager
def _session() -> Iterator[Any]:
    """A session of this command's own database, whose connections go with it."""
    with _database() as db, db.session() as session:
        yield session


def _done(out: Any) -> int:
    print(json.dumps(out, indent=2, default=str))
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from engine.cli.clock import engine_clock
    from engine.system.operations import OperationError, rollback

    actor = {"name": f"cli:{getpass.getuser()}", "role": "publisher"}
    try:
        with _database() as db, db.session() as session:
            out = rollback(session, args.kind, args.name, args.to_version, args.why, actor=actor,
                           clock=engine_clock(db))
    except OperationError as exc:
        raise BadInput(_flag(exc, {"to_version": "--to", "why": "--why", "name": "NAME"})) from None
    return _done(out)


def run_migrate_subscriptions(args: argparse.Namespace) -> int:
    from engine.clock import SystemClock
    from engine.system.operations import OperationError, migrate_catalog

    try:
        with _session() as session:
            out = migrate_catalog(session, args.catalog, args.version, clock=SystemClock(), plan=args.plan,
                                  subscription_ids=args.subscription_ids, dry_run=args.dry_run)
    except OperationError as exc:
        flags = {"catalog": "CATALOG", "version": "--version", "subscription_ids": "--subscription"}
        raise BadInput(_flag(exc, flags)) from None
    return _done(out)


def run_user_change(args: argparse.Namespace) -> int:
    from engine.system.operations import OperationError, change_user

    try:
        with _session() as session:
            out = change_user(session, args.name, role=args.role, disabled=args.disabled)
    except OperationError as exc:
        raise BadInput(_flag(exc, {"name": "NAME", "role": "ROLE"})) from None
    return _done(out)


def _flag(exc: Any, flags: dict[str, str]) -> str:
    """The message naming what the operator typed (a flag or an argument)."""
    field = exc.field.split("[")[0]
    return f"{flags.get(field, '--' + field.replace('_', '-'))}: {exc.message}"
