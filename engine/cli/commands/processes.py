"""The long-running processes: a worker, the scheduler, the bus's status, the PSP sandbox.
Moved from engine/cli/commands/ops.py."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING, Any

from engine.cli.clock import sandbox_clock
from engine.cli.commands.serve import require_migrated
from engine.cli.errors import BadInput
from engine.config import get_settings

if TYPE_CHECKING:
    from engine.system import System


def register(sub: Any) -> None:
    """The long-running processes: a worker, the scheduler, the bus's status, the PSP sandbox."""
    p = sub.add_parser("worker", help="consume a subsystem's queue (sales, payments, access, messaging, all)")
    # A name outside the list was a traceback from deep in the bus; argparse says which exist.
    p.add_argument("--subsystem", required=True, choices=["sales", "payments", "access", "messaging", "all"])
    p.set_defaults(func=run_worker)

    p = sub.add_parser("scheduler", help="run the scheduler (one leader across processes)")
    p.set_defaults(func=run_scheduler)

    p = sub.add_parser("broker", help="the event bus")
    b = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = b.add_parser("status", help="queues, depths, retries and dead letters")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run_broker_status)

    p = sub.add_parser("psp-sandbox", help="the sandbox payment provider (HTTP)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--webhook-url", default=None, help="where to post signed webhooks")
    p.set_defaults(func=run_sandbox)


def _deployed_system() -> System:
    """The system a deployment's processes run, automation included (so every queue the
    workers declare and every job the scheduler runs is wired), on a migrated database."""
    from engine.system import build_system

    settings = get_settings()
    require_migrated(settings.database_url)
    return build_system(settings, create_tables=False, automation=True)


def _stop_on_signal() -> threading.Event:
    """An event SIGTERM and SIGINT set: the process finishes what it holds, then stops."""
    from engine.events import install_signal_handlers

    stop = threading.Event()
    install_signal_handlers(stop)
    return stop


def run_worker(args: argparse.Namespace) -> int:
    from engine.events import run_worker

    system = _deployed_system()
    stop = _stop_on_signal()
    print(f"worker {args.subsystem}: consuming (SIGTERM finishes the message in hand)", file=sys.stderr, flush=True)
    run_worker(args.subsystem, system.registry, system.settings, stop, db=system.db, clock=system.clock)
    return 0


def run_scheduler(args: argparse.Namespace) -> int:
    system = _deployed_system()
    stop = _stop_on_signal()
    print("scheduler: waiting to lead (one leader across processes); SIGTERM stops it", file=sys.stderr, flush=True)
    system.run_scheduler(stop)
    return 0


def run_broker_status(args: argparse.Namespace) -> int:
    from engine.events import broker_status

    # The wiring the workers run, so every queue they declare is listed (automation's too).
    system = _deployed_system()
    status = broker_status(system.settings, db=system.db, handlers=system.registry)
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    print(f"bus: {status.get('bus', '?')}")
    for q in status.get("queues", []):
        print("  " + "  ".join(f"{k}={v}" for k, v in q.items()))
    for key, value in status.items():
        if key not in ("bus", "queues"):
            print(f"{key}: {value}")
    return 0


def run_sandbox(args: argparse.Namespace) -> int:
    from engine.payments import run_sandbox

    settings = get_settings()
    if not settings.psp_webhook_secret:
        raise BadInput(
            "BILLING_PSP_WEBHOOK_SECRET is not set: the sandbox signs its webhooks with it and the "
            "API verifies them (there is no default)"
        )
    run_sandbox(
        args.host,
        args.port or settings.psp_port,
        api_key=settings.psp_api_key,
        webhook_url=args.webhook_url,
        webhook_secret=settings.psp_webhook_secret,
        clock=sandbox_clock(settings),
    )
    return 0
