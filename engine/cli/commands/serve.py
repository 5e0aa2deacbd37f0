"""`billing serve`, `billing migrate`, `billing apikey`, `billing publish`, `billing clock advance`."""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli.errors import BadInput
from engine.cli.paths import expand
from engine.config import Settings, get_settings

if TYPE_CHECKING:
    from engine.system import System

STATE_DIR = Path("var")
ADMIN_KEY_FILE = STATE_DIR / "admin.key"


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="the HTTP API, with in-process workers and scheduler")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument(
        "--test-clock", metavar="START", help="run on a test clock from START (ISO time); enables /v1/clock/advance"
    )
    p.add_argument("--no-workers", action="store_true", help="serve HTTP only (workers run as `billing worker`)")
    p.set_defaults(func=run_serve)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=run_migrate)

    p = sub.add_parser("apikey", help="create, list or revoke API keys")
    keys = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = keys.add_parser("create", help="print a new key once, on the last line of stdout")
    c.add_argument("--scope", required=True, choices=["product", "admin", "finance"])  # engine.api.keys.SCOPES
    c.add_argument("--name", default="")
    c.set_defaults(func=run_apikey_create)
    r = keys.add_parser("revoke", help="revoke a key by its id")
    r.add_argument("key_id")
    r.set_defaults(func=run_apikey_revoke)
    ls = keys.add_parser("list", help="list keys (never the secrets)")
    ls.set_defaults(func=run_apikey_list)

    p = sub.add_parser("publish", help="validate and publish catalogs (and rulesets) as new versions")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--comment", default="")
    p.add_argument("--author", default=os.environ.get("USER", "cli"))
    p.set_defaults(func=run_publish)

    p = sub.add_parser("clock", help="the test clock of a running engine")
    clock = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = clock.add_parser("advance", help="advance by a duration (3d, 1mo) running all work due on the way")
    a.add_argument("duration")
    a.add_argument("--api", default=None, help="the engine's URL (default: BILLING_API_URL or the local one)")
    a.set_defaults(func=run_clock_advance)


def migrate_database(url: str) -> None:
    from engine.store.migrate import upgrade

    # The migrations create every table (a test checks they match the models): nothing else.
    upgrade(url)


def require_migrated(url: str) -> None:
    """Refuse, with what to do, a command that needs the tables on a database without them."""
    from engine.store.migrate import not_migrated

    why = not_migrated(url)
    if why is not None:
        raise BadInput(why)


def run_migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    migrate_database(settings.database_url)
    print(f"migrated {settings.database_url}")
    return 0


def run_apikey_create(args: argparse.Namespace) -> int:
    from engine.api import create_key
    from engine.store import database_of

    settings = get_settings()
    migrate_database(settings.database_url)
    with database_of(settings) as db, db.session() as session:
        key_id, key = create_key(session, args.scope, now=datetime.now(UTC), name=args.name)
    print(f"created {args.scope} key {key_id}; it is shown once:")
    print(key)
    return 0


def run_apikey_revoke(args: argparse.Namespace) -> int:
    from engine.api import revoke_key
    from engine.store import database_of

    require_migrated(get_settings().database_url)
    with database_of(get_settings()) as db, db.session() as session:
        if not revoke_key(session, args.key_id, now=datetime.now(UTC)):
            raise BadInput(f"key_id: no active key {args.key_id!r}")
    print(f"revoked {args.key_id}")
    return 0


def run_apikey_list(args: argparse.Namespace) -> int:
    from engine.api import list_keys
    from engine.store import database_of

    require_migrated(get_settings().database_url)
    with database_of(get_settings()) as db, db.session() as session:
        for row in list_keys(session):
            print(json.dumps(row))
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from engine.cli.clock import engine_clock
    from engine.documents import DocumentError, load_yaml_file
    from engine.store import database_of
    from engine.system.operations import OperationError, publish_documents

    settings = get_settings()
    migrate_database(settings.database_url)
    docs = []
    problems = []
    for path in expand(args.paths):
        try:
            docs.append(load_yaml_file(path))
        except DocumentError as exc:
            problems.extend(exc.problems)
    if problems:
        raise BadInput("\n".join(str(p) for p in problems))
    # All or nothing: one transaction for every file given. Rulesets may name what is published
    # in this database (and the catalogs given with them), as `POST /v1/publish` checks them.
    try:
        with database_of(settings) as db, db.session() as session:
            results = publish_documents(session, docs, args.author, args.comment, clock=engine_clock(db))
    except OperationError as exc:
        raise BadInput("\n".join(exc.problems) or str(exc)) from None
    for item in results:
        print(item.line())
    return 0


def _api_key() -> str:
    key = os.environ.get("BILLING_API_KEY")
    if key:
        return key
    if ADMIN_KEY_FILE.exists():
        return ADMIN_KEY_FILE.read_text().strip()
    raise BadInput("no API key: set BILLING_API_KEY (an admin key) or run `billing up`, which saves one in var/")


def run_clock_advance(args: argparse.Namespace) -> int:
    import httpx

    settings = get_settings()
    url = args.api or os.environ.get("BILLING_API_URL") or f"http://{settings.api_host}:{settings.api_port}"
    try:
        response = httpx.post(
            f"{url}/v1/clock/advance",
            json={"by": args.duration},
            headers={"Authorization": f"Bearer {_api_key()}"},
            timeout=600,
        )
    except httpx.HTTPError as exc:
        raise BadInput(f"--api: cannot reach the engine at {url} ({exc}); is `billing up` running?") from None
    if response.status_code != 200:
        try:
            body = response.json()
            raise BadInput(f"{body.get('field', 'clock')}: {body.get('detail')}")
        except ValueError:
            raise BadInput(f"the engine answered {response.status_code}") from None
    print(json.dumps(response.json()))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.test_clock:
        settings = settings.model_copy(update={"test_clock": args.test_clock})
    host = args.host or settings.api_host
    port = args.port or settings.api_port
    # Bound before anything starts, so a busy port is the only thing said (and nothing is migrated).
    listener = bind_api(host, port, "--port" if args.port else "BILLING_API_PORT")
    migrate_database(settings.database_url)
    system, stop = start_system(settings, workers=not args.no_workers)
    try:
        serve_http(system, host, port, listener)
    finally:
        stop.set()
    return 0


def start_system(settings: Settings, *, workers: bool = True) -> tuple[System, threading.Event]:
    from engine.system import build_system

    if settings.test_clock:
        try:
            datetime.fromisoformat(settings.test_clock.replace("Z", "+00:00"))
        except ValueError:
            raise BadInput(
                f"--test-clock: {settings.test_clock!r} is not an ISO time such as 2026-11-01T00:00:00Z"
            ) from None
    # On a test clock an API-only process still drives the clock advance through the
    # scheduler's due work (the workers apply the events, the advance waits for them).
    wired = workers or bool(settings.test_clock)
    try:
        system = build_system(settings, create_tables=False, automation=wired)
    except ValueError as exc:  # a setting that cannot work (a missing secret): refuse to start
        raise BadInput(str(exc)) from None
    stop = threading.Event()
    system.start_workers(stop, consume=workers)
    return system, stop


def settle_heap() -> None:
    """Move everything built at start (catalogs, rules, the ORM's registries) out of the
    garbage collector's sight: a full collection while serving then scans only what requests
    made, instead of pausing every request for ~100 ms."""
    gc.collect()
    gc.freeze()


def bind_api(host: str, port: int, flag: str) -> socket.socket:
    """The API's listening socket, bound now. uvicorn would bind only once everything else
    has started and been announced, and answer a busy port with its own exit code (3, not one
    of ours); a socket bound up front lets the command refuse at once and serve on it later
    (no window for another process to take the port in between)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (OSError, UnicodeError) as exc:
        raise BadInput(f"{flag}: cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BadInput(
            f"{flag}: cannot listen on {host}:{port}: {exc.strerror or exc}; stop what listens there or choose "
            "another port"
        ) from None
    sock.set_inheritable(True)
    return sock


def serve_http(system: System, host: str, port: int, listener: socket.socket) -> None:
    import uvicorn

    from engine.api import create_app

    app = create_app(system.api_context())
    settle_heap()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    print(f"billing-engine API on http://{host}:{port} (OpenAPI: /docs)", file=sys.stderr, flush=True)
    server.run(sockets=[listener])
