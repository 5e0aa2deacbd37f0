"""`billing credits`: an operator grants credit with a reason, voids a grant, pages the ledger,
on the configured database and the engine's clock (the stored test clock when there is one)."""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from engine.cli.commands.serve import require_migrated
from engine.cli.errors import BadInput
from engine.config import get_settings


def register(sub: Any) -> None:
    p = sub.add_parser("credits", help="customers' wallets: grant, void, ledger")
    c = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    g = c.add_parser("grant", help="grant credit to a customer (printed as JSON)")
    g.add_argument("customer_id")
    g.add_argument("--amount", help="a decimal amount above zero (or --grant)")
    g.add_argument("--grant", dest="catalog_grant", help="a catalog grant's id: its amount and terms")
    g.add_argument("--unit", help="default: the customer's currency")
    g.add_argument("--priority", type=int)
    g.add_argument("--expires-at", help="ISO 8601 with a zone")
    g.add_argument("--rollover", choices=["none", "all"])
    g.add_argument("--reason", required=True, help="why: kept with the grant")
    g.set_defaults(func=run_grant)
    v = c.add_parser("void", help="void a grant: what is left of it leaves the wallet")
    v.add_argument("grant_id")
    v.add_argument("--reason", required=True)
    v.set_defaults(func=run_void)
    ledger = c.add_parser("ledger", help="a customer's wallet entries, oldest first, one JSON line each")
    ledger.add_argument("customer_id")
    ledger.add_argument("--after", type=int, default=0, help="the last entry id of the previous page")
    ledger.add_argument("--limit", type=int, default=50)
    ledger.set_defaults(func=run_ledger)
    _register_budget(c)


def _register_budget(c: Any) -> None:
    b = c.add_parser("budget", help="a customer's spend budget per billing period: set, show, delete")
    b.add_argument("verb", choices=["set", "show", "delete"])
    b.add_argument("customer_id")
    b.add_argument("--amount", help="set: the budget per period, in the customer's currency")
    b.add_argument("--alerts", help="set: ascending percentages, comma-separated (50,80,100); default: the plan's")
    b.add_argument("--hard-stop", action=argparse.BooleanOptionalAction, default=None,
                   help="set: deny metered use once spent (budget_exhausted); default: the plan's")
    b.add_argument("--low-balance", help="set: the wallet level below which credits.balance_low is sent")
    b.set_defaults(func=run_budget)


def _system() -> Any:
    from engine.system import build_system

    settings = get_settings()
    require_migrated(settings.database_url)
    return build_system(settings, create_tables=False, payments=None)


def _wallet_errors(exc: Exception) -> BadInput:
    field = getattr(exc, "field", "input")
    message = getattr(exc, "message", str(exc))
    return BadInput(f"{field}: {message}")


def run_grant(args: argparse.Namespace) -> int:
    from datetime import datetime

    from engine import credits, sales

    # The options not given (None) are left out below.
    spec: dict[str, Any] = {"reason": args.reason, "amount": args.amount, "grant": args.catalog_grant,
                            "unit": args.unit, "rollover": args.rollover, "priority": args.priority}
    if args.expires_at:
        try:
            spec["expires_at"] = datetime.fromisoformat(args.expires_at.replace("Z", "+00:00"))
        except ValueError:
            raise BadInput(f"--expires-at: {args.expires_at!r} is not an ISO 8601 time") from None
    system = _system()
    try:
        with system.db.session() as session:
            out = sales.grant_credit(session, args.customer_id, {k: v for k, v in spec.items() if v is not None},
                                     clock=system.clock, created_by=f"cli:{getpass.getuser()}")
    except (sales.SalesError, credits.CreditsError) as exc:
        raise _wallet_errors(exc) from None
    finally:
        system.close()
    print(json.dumps(out, indent=2))
    return 0


def run_void(args: argparse.Namespace) -> int:
    from engine import credits, sales

    system = _system()
    try:
        with system.db.session() as session:
            g = credits.void_grant(session, args.grant_id, system.clock.now(), reason=args.reason)
            sales.announce_balance(session, g.customer_id, g.unit, system.clock.now())
            out = credits.grant_to_dict(g, credits.remaining(session, [g.id])[g.id])
    except credits.CreditsError as exc:
        raise _wallet_errors(exc) from None
    finally:
        system.close()
    print(json.dumps(out, indent=2))
    return 0


def run_ledger(args: argparse.Namespace) -> int:
    from engine import credits

    system = _system()
    try:
        with system.db.read_session() as session:
            page = credits.ledger_page(session, args.customer_id, after=args.after, limit=args.limit)
    except credits.CreditsError as exc:
        raise _wallet_errors(exc) from None
    finally:
        system.close()
    for entry in page["entries"]:
        print(json.dumps(entry))
    if page["next_after"] is not None:
        print(json.dumps({"next_after": page["next_after"]}))
    return 0


def _budget_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {"amount": args.amount, "hard_stop": args.hard_stop, "low_balance": args.low_balance}
    if args.alerts is not None:
        try:
            spec["alerts"] = [int(a) for a in args.alerts.split(",") if a.strip()]
        except ValueError:
            raise BadInput(f"--alerts: {args.alerts!r} is not a comma-separated list of whole percentages") from None
    return spec


def run_budget(args: argparse.Namespace) -> int:
    from engine import credits, sales

    spec = _budget_spec(args) if args.verb == "set" else {}
    system = _system()
    try:
        with system.db.session() as session:
            if args.verb == "set":
                out: Any = sales.set_budget(session, args.customer_id, spec, clock=system.clock)
            elif args.verb == "show":
                out = sales.budget_status(session, args.customer_id)
            else:
                out = {"deleted": sales.delete_budget(session, args.customer_id, clock=system.clock)}
    except (sales.SalesError, credits.CreditsError) as exc:
        raise _wallet_errors(exc) from None
    finally:
        system.close()
    print(json.dumps(out, indent=2))
    return 0
