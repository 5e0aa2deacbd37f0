"""Operations: workers, the broker, the payment sandbox, reconciliation, templates, users,
lint and simulation."""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from engine.cli.errors import BadInput
from engine.cli.paths import expand
from engine.config import get_settings


def register(sub: Any) -> None:
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

    p = sub.add_parser("reconcile", help="import a settlement CSV or camt.053 statement and match it")
    p.add_argument("file")
    p.add_argument("--provider", default="sandbox")
    p.set_defaults(func=run_reconcile)

    p = sub.add_parser("export", help="accounting export")
    e = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    j = e.add_parser("journal", help="balanced double-entry journal lines as CSV")
    j.add_argument("--from", dest="start", required=True, help="ISO date")
    j.add_argument("--to", dest="end", required=True, help="ISO date (exclusive)")
    j.add_argument("--out", default="-")
    j.set_defaults(func=run_export_journal)

    p = sub.add_parser("template", help="message templates")
    t = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pv = t.add_parser("preview", help="render a template with its sample data")
    pv.add_argument("name")
    pv.add_argument("--channel", default="email", choices=["email", "sms", "in_app", "webhook"])
    pv.add_argument("--locale", default="en")
    pv.set_defaults(func=run_template_preview)

    p = sub.add_parser("user", help="console users")
    u = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = u.add_parser("add", help="add a console user (the password is asked, or read from stdin)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=["viewer", "editor", "publisher"])
    a.add_argument("--password-stdin", action="store_true")
    a.set_defaults(func=run_user_add)

    p = sub.add_parser("lint", help="lint catalogs and rulesets together")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--templates", default="templates")
    p.set_defaults(func=run_lint)

    p = sub.add_parser("simulate", help="what-if: price a cohort on a baseline and a draft catalog")
    p.add_argument("--baseline", required=True, help="the catalog in force")
    p.add_argument("--draft", required=True, help="the catalog to try")
    p.add_argument("--customers", type=int, default=1000, help="a synthetic cohort of this many customers")
    p.add_argument("--csv", help="a cohort CSV instead of a synthetic one")
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--start", default=None, help="first month (ISO date); default this month")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_simulate)


def run_worker(args: argparse.Namespace) -> int:
    from engine.events import install_signal_handlers, run_worker
    from engine.system import build_system, standard_wiring

    settings = get_settings()
    system = build_system(settings, create_tables=False, wiring=standard_wiring())
    stop = threading.Event()
    install_signal_handlers(stop)
    print(f"worker {args.subsystem}: consuming (SIGTERM finishes the message in hand)", file=sys.stderr, flush=True)
    run_worker(args.subsystem, system.registry, settings, stop, db=system.db, clock=system.clock)
    return 0


def run_scheduler(args: argparse.Namespace) -> int:
    from engine.events import install_signal_handlers
    from engine.scheduler import run_scheduler
    from engine.system import build_system, standard_wiring

    settings = get_settings()
    system = build_system(settings, create_tables=False, wiring=standard_wiring())
    stop = threading.Event()
    install_signal_handlers(stop)
    print("scheduler: waiting to lead (one leader across processes); SIGTERM stops it", file=sys.stderr, flush=True)
    run_scheduler(settings, stop, system=system)
    return 0


def run_broker_status(args: argparse.Namespace) -> int:
    from engine.events import broker_status
    from engine.system import build_system

    system = build_system(get_settings(), create_tables=False)
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
        raise BadInput("BILLING_PSP_WEBHOOK_SECRET is not set: the sandbox signs its webhooks with it and the "
                       "API verifies them (there is no default)")
    run_sandbox(
        args.host,
        args.port or settings.psp_port,
        api_key=settings.psp_api_key,
        webhook_url=args.webhook_url,
        webhook_secret=settings.psp_webhook_secret,
    )
    return 0


def _payments_db() -> Any:
    from engine.cli.commands.serve import migrate_database
    from engine.store import Database
    from engine.system import configure_payments

    settings = get_settings()
    migrate_database(settings.database_url)
    # This command receives no webhooks: a throwaway secret when none is configured.
    configure_payments(
        settings.model_copy(update={"psp_url": settings.psp_url or "http://127.0.0.1:0",
                                    "psp_webhook_secret": settings.psp_webhook_secret or secrets.token_hex(16)}),
        __import__("engine.clock", fromlist=["SystemClock"]).SystemClock(),
    )
    return Database(settings.database_url)


def run_reconcile(args: argparse.Namespace) -> int:
    from engine.payments import ReconciliationError, reconcile_file

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise BadInput(f"{args.file}: {exc.strerror or exc}") from None
    db = _payments_db()
    try:
        with db.session() as session:
            report = reconcile_file(session, data, provider=args.provider, filename=args.file)
    except (ReconciliationError, ValueError) as exc:
        raise BadInput(f"{args.file}: {exc}") from None
    print(json.dumps(report.as_dict(), indent=2, default=str))
    return 0


def run_export_journal(args: argparse.Namespace) -> int:
    from engine.payments import export_journal_csv

    try:
        start = datetime.combine(date.fromisoformat(args.start), datetime.min.time(), UTC)
        end = datetime.combine(date.fromisoformat(args.end), datetime.min.time(), UTC)
    except ValueError as exc:
        raise BadInput(f"--from/--to: {exc}") from None
    db = _payments_db()
    with db.session() as session:
        if args.out == "-":
            export_journal_csv(session, start, end, sys.stdout)
        else:
            with open(args.out, "w", newline="", encoding="utf-8") as out:
                summary = export_journal_csv(session, start, end, out)
            print(summary, file=sys.stderr)
    return 0


def run_template_preview(args: argparse.Namespace) -> int:
    from engine.messaging import TemplateError, preview

    try:
        rendered = preview(args.name, args.channel, args.locale)
    except TemplateError as exc:
        raise BadInput(str(exc)) from None
    for key in ("subject", "title", "text", "body", "action_url", "html"):
        value = getattr(rendered, key, None)
        if value:
            print(f"--- {key}\n{value}")
    if rendered.payload is not None:
        print("--- payload\n" + json.dumps(rendered.payload, indent=2))
    if rendered.sms is not None:
        print(f"--- sms: {rendered.sms}")
    return 0


def run_user_add(args: argparse.Namespace) -> int:
    from engine.cli.commands.serve import migrate_database
    from engine.store import Database
    from engine.users import UserError, add_user

    settings = get_settings()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
    migrate_database(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            add_user(session, args.name, args.role, password)
    except UserError as exc:
        raise BadInput(str(exc)) from None
    print(f"added {args.role} {args.name}")
    return 0


def run_lint(args: argparse.Namespace) -> int:
    from engine.rules import lint_paths

    problems = lint_paths([str(p) for p in expand(args.paths)], templates=args.templates)
    for problem in problems:
        print(problem, file=sys.stderr if problem.severity == "error" else sys.stdout)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        print(f"{len(errors)} error(s), {len(problems) - len(errors)} warning(s)", file=sys.stderr)
        return 1
    print(f"lint: no errors, {len(problems)} warning(s)")
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from engine.catalog import DocumentError, load_catalog
    from engine.simulation import (
        CohortError,
        SimulationError,
        SyntheticSpec,
        cohort_from_csv,
        simulate,
        synthetic_cohort,
    )

    try:
        baseline, draft = load_catalog(args.baseline), load_catalog(args.draft)
    except DocumentError as exc:
        raise BadInput(str(exc)) from None
    start = date.fromisoformat(args.start) if args.start else datetime.now(UTC).date().replace(day=1)
    try:
        if args.csv:
            cohort = cohort_from_csv(Path(args.csv).read_bytes(), [baseline])
        else:
            if args.customers < 1:
                raise BadInput("--customers: a cohort needs at least one customer")
            plans = [p for p in baseline.plans if baseline.plans[p].interval != "once"]
            spec = SyntheticSpec(count=args.customers, plan_mix={p: 1.0 for p in plans}, months=args.months)
            cohort = synthetic_cohort(spec, baseline)
        result = simulate(baseline, draft, cohort, months=args.months, start=start)
    except (CohortError, SimulationError, OSError) as exc:
        raise BadInput(str(exc)) from None
    if args.json:
        print(
            json.dumps(
                {"totals": result.totals, "by_month": result.by_month, "by_plan": result.by_plan}, indent=2, default=str
            )
        )
    else:
        print(f"{result.customer_months} customer-months, {result.currency}, {result.seconds:.1f} s")
        for row in result.by_month:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
        print("totals: " + "  ".join(f"{k}={v}" for k, v in result.totals.items()))
    return 0
