"""`billing up`: the whole embedded default in one process: migrations, the demo seed, the
payment sandbox, the API with its in-process workers and scheduler, and the console."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli.clock import sandbox_clock
from engine.cli.commands.serve import ADMIN_KEY_FILE, STATE_DIR, bind_api, migrate_database, serve_http
from engine.cli.mailsink import MailSink
from engine.config import Settings, get_settings

if TYPE_CHECKING:
    from engine.system import System


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="start the whole embedded system (SQLite, in-process bus, demo data)")
    p.add_argument("--no-console", action="store_true", help="do not start the Streamlit console")
    p.add_argument("--no-seed", action="store_true", help="do not seed demo data into an empty database")
    p.set_defaults(func=run)


DEMO_SELLER_NAME = "Acme Analytics Demo AG"
DEMO_SELLER_IBAN = "CH9300762011623852957"  # the ISO 13616 example IBAN
DEMO_SELLER_ADDRESS = "Bahnhofstrasse 1; 8001 Zürich; Switzerland"  # printed on the demo's PDFs
DEMO_SELLER_TAX_ID = "CHE-123.456.789 MWST"


def start_sandbox(settings: Any) -> threading.Thread:
    """The sandbox payment provider, in this process, posting webhooks to our API."""
    import uvicorn

    from engine.payments import create_sandbox_app

    app = create_sandbox_app(
        api_key=settings.psp_api_key,
        webhook_secret=settings.psp_webhook_secret,
        webhook_url=f"http://{settings.api_host}:{settings.api_port}/webhooks/psp/sandbox",
        clock=sandbox_clock(settings),
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.psp_port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="psp-sandbox", daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return thread


def save_admin_key(key: str) -> None:
    STATE_DIR.mkdir(exist_ok=True)
    ADMIN_KEY_FILE.write_text(key + "\n")
    os.chmod(ADMIN_KEY_FILE, 0o600)


def run(args: argparse.Namespace) -> int:
    from engine.system import build_system
    from engine.system import demo_seed as demo

    settings = get_settings()
    # Bound before anything starts: a busy port is refused first, not after the announcement.
    listener = bind_api(settings.api_host, settings.api_port, "BILLING_API_PORT")
    settings, mail_note = _demo_settings(settings)
    out = sys.stdout
    print(f"billing-engine: database {settings.database_url}", file=out, flush=True)
    migrate_database(settings.database_url)
    start_sandbox(settings)
    system = build_system(settings, create_tables=False, automation=True)
    seeding = not args.no_seed and not demo.is_seeded(system)
    if seeding:
        _seed_demo(system, settings, out)
    sign_ins = seed_console_users(system, seeding)
    key_note = _admin_key_note(system)
    stop = threading.Event()
    system.start_workers(stop)
    console = None
    if not args.no_console:
        console = start_console(settings, out, sign_ins)
    _announce(settings, out, mail_note, key_note)
    # uvicorn answers SIGTERM by stopping, then raises the signal again with the handler it
    # found: with the default one the process would die there, before the console (a
    # process of its own) is stopped below. Ours turns it into a normal exit.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        serve_http(system, settings.api_host, settings.api_port, listener)
    finally:
        stop.set()
        if console is not None:
            console.terminate()
            try:
                console.wait(timeout=10)
            except subprocess.TimeoutExpired:
                console.kill()
    return 0


def _demo_settings(settings: Settings) -> tuple[Settings, str]:
    """The settings completed for a demo on one machine (the local sandbox, the demo seller, a
    fresh webhook secret, a mail sink when no SMTP is set), and the line saying where mail goes."""
    if not settings.psp_url:
        settings = settings.model_copy(update={"psp_url": f"http://127.0.0.1:{settings.psp_port}"})
    if not settings.seller_name and not settings.seller_iban:
        # The demo's own seller, for its bank-transfer invoice emails (a demo IBAN, not a real account).
        settings = settings.model_copy(update={"seller_name": DEMO_SELLER_NAME, "seller_iban": DEMO_SELLER_IBAN,
                                               "seller_address": settings.seller_address or DEMO_SELLER_ADDRESS,
                                               "seller_tax_id": settings.seller_tax_id or DEMO_SELLER_TAX_ID})
    if not settings.psp_webhook_secret:
        # The demo's sandbox runs in this process: a fresh secret each run, never a public one.
        settings = settings.model_copy(update={"psp_webhook_secret": "whsec_" + secrets.token_urlsafe(24)})
    mail_note = f"email    {settings.smtp_url.split('@')[-1]}"
    if not settings.smtp_url:
        sink = MailSink(STATE_DIR / "mail", settings.mail_sink_port).start()
        settings = settings.model_copy(update={"smtp_url": sink.url})
        mail_note = f"email    every message kept as a file in {sink.directory}/ (a local SMTP sink on :{sink.port})"
    return settings, mail_note


def _seed_demo(system: System, settings: Settings, out: TextIO) -> None:
    """The demo's month of history, replayed by a system of its own on this database."""
    from engine.system import build_system
    from engine.system import demo_seed as demo

    now = system.clock.now()  # the live system's time: the replay ends where it starts
    print(
        "seeding the demo: catalogs, rules, 50 customers and a month of usage (about a minute)...",
        file=out,
        flush=True,
    )
    replay = build_system(
        settings, clock=demo.replay_clock(now, 30), db=system.db, create_tables=False, automation=True
    )
    report = demo.seed(replay, now)
    print(
        f"  {report.customers} customers, {report.events} usage events, catalogs {', '.join(report.catalogs)}, "
        f"rulesets {', '.join(report.rulesets)}",
        file=out,
        flush=True,
    )
    system.sync_rules()


def _admin_key_note(system: System) -> str:
    """Where the admin API key is; on the first run, a new key shown once and saved."""
    from engine.api import create_key

    if ADMIN_KEY_FILE.exists():
        return f"the admin API key is in {ADMIN_KEY_FILE}"
    with system.db.session() as s:
        _, key = create_key(s, "admin", now=datetime.now(UTC), name="billing up")
    save_admin_key(key)
    return f"admin API key (shown once; also saved to {ADMIN_KEY_FILE}, mode 600):\n  {key}"


def _announce(settings: Settings, out: TextIO, mail_note: str, key_note: str) -> None:
    base = f"http://{settings.api_host}:{settings.api_port}"
    print(
        f"""
billing-engine is up.
  API      {base}   (OpenAPI docs: {base}/docs, health: {base}/health)
  sandbox  http://127.0.0.1:{settings.psp_port}   (payment provider; test cards in docs)
  {mail_note}
  {key_note}

Try it:
  curl -s -X POST {base}/v1/access/check -H "Authorization: Bearer $(cat {ADMIN_KEY_FILE})" \\
       -H 'Content-Type: application/json' -d '{{"customer_id": "cus_001", "feature": "api"}}'
""",
        file=out,
        flush=True,
    )


def _exit_on_sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def seed_console_users(system: System, seeding: bool) -> list[tuple[str, str, str]]:
    """The demo sign-ins, only in the database this run seeds with the demo (the console's
    tables came with the migrations): a database the demo did not seed (a real one, or one
    seeded before, whose users may have changed their passwords or been removed) never gets
    `<role>-demo` passwords."""
    try:
        from engine.console import seed_demo
    except ImportError:
        return []
    if not seeding:
        return []
    with system.db.session() as s:
        return seed_demo(s, clock=system.clock)


def start_console(settings: Any, out: Any, sign_ins: list[tuple[str, str, str]]) -> Any:
    try:
        from engine.console import run_console
    except ImportError:
        print("  (console not installed)", file=out)
        return None
    process = run_console(settings.console_port, database_url=settings.database_url, wait=True, out=out,
                          seed_demo=False)
    for name, role, password in sign_ins:
        print(f"  sign in as {name} / {password} ({role}; created with the demo seed)", file=out)
    if not sign_ins:
        print("  sign in with a console user (`billing user add NAME --role viewer|editor|publisher`)", file=out)
    return process
