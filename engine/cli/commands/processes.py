"""The long-running processes: a worker, the scheduler, the bus's status, the PSP sandbox.
Moved from engine/cli/commands/ops.py."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from engine.cli.clock import sandbox_clock
from engine.cli.commands.serve import require_migrated
from engine.cli.errors import BadInput
from engine.config import get_settings


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


def run_worker(args: argparse.Namespace) -> int:
    from engine.events import install_signal_handlers, run_worker
    from engine.system import build_system

    settings = get_settings()
    require_migrated(settings.database_url)
    system = build_system(settings, create_tables=False, automation=True)
    stop = threading.Event()
    install_signal_handlers(stop)
    print(f"worker {args.subsystem}: consuming (SIGTERM finishes the message in hand)", file=sys.stderr, flush=True)
    run_worker(args.subsystem, system.registry, settings, stop, db=system.db, clock=system.clock)
    return 0


def run_scheduler(args: argparse.Namespace) -> int:
    from engine.events import install_signal_handlers
    from engine.system import build_system

    settings = get_settings()
    require_migrated(settings.database_url)
    system = build_system(settings, create_tables=False, automation=True)
    stop = threading.Event()
    install_signal_handlers(stop)
    print("scheduler: waiting to lead (one leader across processes); SIGTERM stops it", file=sys.stderr, flush=True)
    system.run_scheduler(stop)
    return 0


def run_broker_status(args: argparse.Namespace) -> int:
    from engine.events import broker_status
    from engine.system import build_system

    settings = get_settings()
    require_migrated(settings.database_url)
    # The wiring the workers run, so every queue they declare is listed (automation's too).
    system = build_system(settings, create_tables=False, automation=True)
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
