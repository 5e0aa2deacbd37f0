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
from typing import TYPE_CHECKING, Any

from engine.cli.clock import cli_now, engine_clock, sandbox_clock
from engine.cli.commands.operator import register_user_actions
from engine.cli.commands.serve import require_migrated
from engine.cli.errors import BadInput
from engine.cli.paths import expand
from engine.config import get_settings

if TYPE_CHECKING:
    from engine.simulation import Cohort, SimulationResult


def register(sub: Any) -> None:
    _register_processes(sub)
    _register_reconciliation(sub)
    _register_admin(sub)


def _register_processes(sub: Any) -> None:
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


def _register_reconciliation(sub: Any) -> None:
    """Bank and settlement reconciliation, and the accounting export."""
    p = sub.add_parser("reconcile", help="import a settlement CSV or camt.053 statement and match it")
    p.add_argument("file")
    p.add_argument("--provider", default="sandbox")
    p.set_defaults(func=run_reconcile)

    p = sub.add_parser("reconcile-lines", help="bank lines a person must finish, with suggested invoices")
    p.add_argument("--status", default="open", choices=["open", "matched", "resolved", "pending", "skipped", "all"])
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=run_reconcile_lines)

    p = sub.add_parser("reconcile-decide", help="confirm, split or dismiss an open bank line (recorded with who and why)")
    p.add_argument("line_id")
    p.add_argument("action", choices=["confirm", "split", "dismiss"])
    p.add_argument("--invoice", action="append", default=[], metavar="INVOICE[=AMOUNT]",
                   help="an invoice to apply the transfer to (repeat for a split, each with =AMOUNT)")
    p.add_argument("--reason", required=True, help="why: kept with the decision")
    p.set_defaults(func=run_reconcile_decide)

    p = sub.add_parser("export", help="accounting export")
    e = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    j = e.add_parser("journal", help="balanced double-entry journal lines as CSV")
    j.add_argument("--from", dest="start", required=True, help="ISO date")
    j.add_argument("--to", dest="end", required=True, help="ISO date (exclusive)")
    j.add_argument("--out", default="-")
    j.set_defaults(func=run_export_journal)


def _register_admin(sub: Any) -> None:
    """Templates, console users, linting and the what-if simulator."""
    p = sub.add_parser("template", help="message templates")
    t = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pv = t.add_parser("preview", help="render a template with the sample context of the event that triggers it")
    pv.add_argument("name")
    pv.add_argument("--channel", default="email", choices=["email", "sms", "in_app", "webhook"])
    pv.add_argument("--locale", default="en")
    pv.add_argument("--rules", default=None, help="rulesets that send it (default: the shipped rules/)")
    pv.set_defaults(func=run_template_preview)

    p = sub.add_parser("user", help="console users")
    u = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = u.add_parser("add", help="add a console user (the password is asked, or read from stdin)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=["viewer", "editor", "publisher"])
    a.add_argument("--password-stdin", action="store_true")
    a.set_defaults(func=run_user_add)
    register_user_actions(u)

    p = sub.add_parser("lint", help="lint catalogs and rulesets together")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--templates", default=None,
                   help="the templates directory rules may name; default BILLING_TEMPLATES_DIR, else the shipped ones")
    p.set_defaults(func=run_lint)

    p = sub.add_parser("simulate", help="what-if: price a cohort on a baseline and a draft catalog")
    p.add_argument("--baseline", required=True, help="the catalog in force")
    p.add_argument("--draft", required=True, help="the catalog to try")
    p.add_argument("--customers", type=int, default=1000, help="a synthetic cohort of this many customers")
    p.add_argument(
        "--usage",
        action="append",
        default=[],
        metavar="METRIC=DIST",
        help="the synthetic cohort's monthly usage of a metric: a number, lognormal:MEDIAN[:SIGMA] or "
        "uniform:LOW:HIGH (repeatable). Metrics not given are drawn from the store's real usage of each plan "
        "(the last 3 full months), else typical usage around each plan's included quota and tiers; "
        "--usage typical skips the store, --usage none leaves them at zero",
    )
    p.add_argument("--move", action="append", default=[], metavar="FROM=TO",
                   help="every customer of plan FROM is on plan TO in the draft (repeatable)")
    p.add_argument("--share", action="append", default=[], metavar="PLAN=SHARE[:FROM,...]",
                   help="a share of the cohort (30%% or 0.3; only of plans FROM,... if given) takes PLAN in the "
                   "draft, e.g. a new plan: --share team=20%%:pro (repeatable; drawn with --seed)")
    p.add_argument("--seed", type=int, default=7, help="the synthetic cohort's random seed (same seed, same cohort)")
    p.add_argument("--prepaid", default=None, metavar="SHARE:PACK[:top-up]",
                   help="a share of the cohort (30%% or 0.3, drawn with --seed) buys the credit pack PACK when "
                   "they join and their bills are drawn from it; with :top-up the catalog's automatic top-up "
                   "buys again below its threshold (e.g. --prepaid 30%%:starter:top-up)")
    p.add_argument("--csv", help="a cohort CSV instead of a synthetic one")
    p.add_argument(
        "--rules",
        default="published",
        help="the pricing rules in force: 'published' (those published in the database, the default), "
        "a ruleset file or directory, or 'none'",
    )
    p.add_argument("--draft-rules", default=None, help="proposed pricing rules (file or directory); default: --rules")
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--start", default=None, help="first month (ISO date); default this month")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_simulate)



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
        raise BadInput("BILLING_PSP_WEBHOOK_SECRET is not set: the sandbox signs its webhooks with it and the "
                       "API verifies them (there is no default)")
    run_sandbox(
        args.host,
        args.port or settings.psp_port,
        api_key=settings.psp_api_key,
        webhook_url=args.webhook_url,
        webhook_secret=settings.psp_webhook_secret,
        clock=sandbox_clock(settings),
    )
    return 0


def _payments_db() -> tuple[Any, Any]:
    """The database and a payment service of this command's own (no provider is called by
    an import or an export, so an unset provider URL is fine)."""
    from engine.cli.commands.serve import migrate_database
    from engine.clock import SystemClock
    from engine.store import Database
    from engine.system import payment_service

    settings = get_settings()
    migrate_database(settings.database_url)
    # This command receives no webhooks: a throwaway secret when none is configured.
    service = payment_service(
        settings.model_copy(update={"psp_url": settings.psp_url or "http://127.0.0.1:0",
                                    "psp_webhook_secret": settings.psp_webhook_secret or secrets.token_hex(16)}),
        SystemClock(),
    )
    return Database(settings.database_url), service


def run_reconcile(args: argparse.Namespace) -> int:
    from engine.payments import ReconciliationError, reconcile_file

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise BadInput(f"{args.file}: {exc.strerror or exc}") from None
    payouts = _payout_accounts()
    db, service = _payments_db()
    try:
        with db.session() as session:
            report = reconcile_file(session, data, provider=args.provider, filename=args.file, service=service,
                                    payout_accounts=payouts)
    except (ReconciliationError, ValueError) as exc:
        raise BadInput(_in_file(args.file, str(exc))) from None
    print(json.dumps(report.as_dict(), indent=2, default=str))
    return 0


def _payout_accounts() -> dict[str, str]:
    """The bank account each provider pays out to, from the deployment's chart of accounts
    (BILLING_CHART_OF_ACCOUNTS, or the shipped one); a broken chart stops before anything is read."""
    from engine.documents import DocumentError
    from engine.payments import books

    try:
        return books.chart_for(get_settings().chart_of_accounts or None).payouts
    except DocumentError as exc:
        raise BadInput(str(exc)) from None


def _in_file(file: str, message: str) -> str:
    """`FILE: message`, once: the parser's own messages already start `FILE:LINE:`."""
    return message if message.startswith(f"{file}:") else f"{file}: {message}"


def run_reconcile_lines(args: argparse.Namespace) -> int:
    from engine.payments import bank

    db, _service = _payments_db()
    with db.session() as session:
        items = bank.list_lines(session, status=None if args.status == "all" else args.status, limit=args.limit)
    print(json.dumps({"items": items}, indent=2, default=str))
    return 0


def run_reconcile_decide(args: argparse.Namespace) -> int:
    from decimal import Decimal, InvalidOperation

    from engine.payments import PaymentError, bank

    allocations: list[tuple[str, Decimal | None]] = []
    for given in args.invoice:
        invoice_id, _, amount = given.partition("=")
        try:
            allocations.append((invoice_id, Decimal(amount) if amount else None))
        except InvalidOperation:
            raise BadInput(f"--invoice {given}: {amount!r} is not a decimal amount") from None
    db, service = _payments_db()
    try:
        with db.session() as session:
            out = bank.decide(session, args.line_id, action=args.action, allocations=allocations,
                              reason=args.reason, actor=f"cli:{getpass.getuser()}", service=service)
    except PaymentError as exc:
        raise BadInput(f"{exc.field or 'line_id'}: {exc.message}") from None
    print(json.dumps(out, indent=2, default=str))
    return 0


def run_export_journal(args: argparse.Namespace) -> int:
    from engine.payments import export_journal_csv

    try:
        start = datetime.combine(date.fromisoformat(args.start), datetime.min.time(), UTC)
        end = datetime.combine(date.fromisoformat(args.end), datetime.min.time(), UTC)
    except ValueError as exc:
        raise BadInput(f"--from/--to: {exc}") from None
    db, _service = _payments_db()
    with db.session() as session:
        if args.out == "-":
            export_journal_csv(session, start, end, sys.stdout)
        else:
            with open(args.out, "w", newline="", encoding="utf-8") as out:
                summary = export_journal_csv(session, start, end, out)
            print(summary, file=sys.stderr)
    return 0


def _rulesets(paths: list[str]) -> list[Any]:
    """The rulesets among `paths` that load (lint reports the others' problems)."""
    from engine.documents import DocumentError
    from engine.rules import load_ruleset

    out = []
    for path in expand(paths):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            continue
        if not any(line.startswith("ruleset:") for line in text.splitlines()):
            continue
        try:
            out.append(load_ruleset(path))
        except (DocumentError, ValueError):
            continue
    return out


def run_template_preview(args: argparse.Namespace) -> int:
    """Render NAME with the sample context of the event that really triggers it (the first
    shipped rule that sends it), so a variable that event does not carry fails here."""
    from engine.config import shipped_dir
    from engine.messaging import Renderer, TemplateError
    from engine.system.samples import CUSTOMER, preview_data

    settings = get_settings()
    rulesets = _rulesets([str(args.rules or shipped_dir(settings.rules_dir))])
    renderer = Renderer(shipped_dir(settings.templates_dir))
    try:
        data = preview_data(args.name, rulesets)
        rendered = renderer.render(args.name, args.channel, data, args.locale,
                                   dict(CUSTOMER, locale=args.locale))
    except (TemplateError, KeyError) as exc:
        raise BadInput(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from None
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
    from engine.operations import OperationError, add_user
    from engine.store import Database

    settings = get_settings()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
    migrate_database(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            add_user(session, args.name, args.role, password, clock=engine_clock(db))
    except OperationError as exc:
        raise BadInput(str(exc)) from None
    print(f"added {args.role} {args.name}")
    return 0


def run_lint(args: argparse.Namespace) -> int:
    from engine.rules import lint_paths

    paths = [str(p) for p in expand(args.paths)]
    templates = _templates_dir(args.templates)
    problems = lint_paths(paths, templates=templates)
    for problem in problems:
        print(problem, file=sys.stderr if problem.severity == "error" else sys.stdout)
    errors = [p for p in problems if p.severity == "error"]
    # Every template a rule sends, rendered with the sample context of the rule's trigger.
    renders = _render_problems(paths, templates)
    for line in renders:
        print(f"error: {line}", file=sys.stderr)
    if errors or renders:
        print(f"{len(errors) + len(renders)} error(s), {len(problems) - len(errors)} warning(s)",
              file=sys.stderr)
        return 1
    print(f"lint: no errors, {len(problems)} warning(s)")
    return 0


def _templates_dir(flag: str | None) -> Path:
    """The templates lint checks against: --templates, else what the engine renders with
    (BILLING_TEMPLATES_DIR, resolved as `billing up` does, so a run outside the checkout still
    checks the shipped ones). A directory that is not there is bad input, never "unchecked"."""
    from engine.config import shipped_dir

    if flag is not None:
        path, named = Path(flag), "--templates"
    else:
        path, named = shipped_dir(get_settings().templates_dir), "BILLING_TEMPLATES_DIR"
    if not path.is_dir():
        raise BadInput(f"{named}: {path} is not a directory of templates")
    return path


def _render_problems(paths: list[str], templates: Path) -> list[str]:
    from engine.messaging import Renderer
    from engine.system.samples import render_problems

    return render_problems(_rulesets(paths), Renderer(templates))


def run_simulate(args: argparse.Namespace) -> int:
    from engine.catalog import DocumentError, load_catalog
    from engine.simulation import (
        CohortError,
        SimulationError,
        assign,
        moves,
        parse_move,
        parse_prepaid,
        parse_share,
        simulate,
    )

    try:
        baseline, draft = load_catalog(args.baseline), load_catalog(args.draft)
    except DocumentError as exc:
        raise BadInput(str(exc)) from None
    start = date.fromisoformat(args.start) if args.start else cli_now().date().replace(day=1)
    notes: list[str] = []
    promotions, draft_promotions = _simulation_rules(args, notes)
    try:
        plan_map = dict(parse_move(m) for m in args.move)
        shares = [parse_share(x) for x in args.share]
        prepaid = parse_prepaid(args.prepaid, seed=args.seed) if args.prepaid else None
        moves.check(baseline, draft, plan_map, shares)
        cohort = _simulation_cohort(args, baseline, notes)
        result = simulate(
            baseline,
            draft,
            cohort,
            months=args.months,
            start=start,
            plan_map=plan_map,
            moved=assign(cohort, shares, seed=args.seed),
            promotions=promotions,
            draft_promotions=draft_promotions,
            prepaid=prepaid,
        )
    except (CohortError, SimulationError, OSError) as exc:
        raise BadInput(str(exc)) from None
    result.warnings[:0] = notes
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
    else:
        _print_simulation(result)
    return 0


def _simulation_cohort(args: argparse.Namespace, baseline: Any, notes: list[str]) -> Cohort:
    """The cohort of a CSV file, or drawn from the options (usage read from the store when
    they ask for it)."""
    from engine.simulation import cohort_from_csv, synthetic_cohort

    if args.csv:
        return cohort_from_csv(Path(args.csv).read_bytes(), [baseline])
    spec = _synthetic_spec(args, baseline)
    if spec.default_usage == "store":
        found = _stored_usage(baseline.name, notes)
        spec.observed, spec.store_read, spec.default_usage = found or {}, found is not None, "typical"
    return synthetic_cohort(spec, baseline)


def _print_simulation(result: SimulationResult) -> None:
    print(f"{result.cohort}")
    for line in result.usage_source:
        print(f"usage: {line}")
    print(f"{result.customer_months} customer-months, {result.currency}, before tax, {result.seconds:.1f} s")
    for row in result.by_month:
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    for d in result.discounts:
        print(f"discount {d['reason'] or d['source']} ({d['source']}): baseline={d['baseline']}  draft={d['draft']}")
    print("totals: " + "  ".join(f"{k}={v}" for k, v in result.totals.items()))
    for line in _prepaid_lines(result) + _progressive_lines(result):
        print(line)
    for f in result.features:
        print(f"features: {f['customers']} customers of {f['plan']} moving to {f['draft_plan']} would "
              f"{'lose' if f['change'] == 'lost' else 'get less of'} {f['feature']}")
    for w in result.warnings:
        print(f"warning: {w}")


def _prepaid_lines(result: SimulationResult) -> list[str]:
    """Credit packs per catalog: cash at sale against revenue earned as credit is used."""
    p = result.prepaid
    if p is None:
        return []
    out = [f"prepaid: {(p['share'] * 100).normalize():f}% of the cohort buy pack {p['pack']}"
           + (" with the automatic top-up" if p["top_up"] else "")]
    for side in ("baseline", "draft"):
        f = p[side]
        out.append(f"prepaid {side}: {f['customers']} customers bought {f['packs_sold']} packs "
                   f"({f['top_ups']} top-ups), sold={f['sold']} credit={f['credit']} consumed={f['consumed']} "
                   f"earned={f['earned']} expired={f['expired']} breakage={f['breakage']} deferred={f['deferred']} "
                   f"collected={f['collected']}; {f['ran_out']} customers ran out")
    return out


def _progressive_lines(result: SimulationResult) -> list[str]:
    """Progressive invoices per catalog, and whether the periods still total their quotes."""
    p = result.progressive
    if p is None:
        return []
    out = []
    for side in ("baseline", "draft"):
        f = p[side]
        same = "unchanged" if f["unchanged"] else "CHANGED"
        out.append(f"progressive {side}: {f['invoices']} invoices for {f['customers']} customers in {f['periods']} "
                   f"periods, billed_early={f['billed_early']}; those periods total {f['period_total']}, "
                   f"their quotes {f['quote_total']} ({same})")
    return out


def _synthetic_spec(args: argparse.Namespace, baseline: Any) -> Any:
    """The synthetic cohort the flags ask for: every recurring plan alike, usage as given by
    --usage and typical for the rest (or none)."""
    from engine.simulation import SyntheticSpec

    if args.customers < 1:
        raise BadInput("--customers: a cohort needs at least one customer")
    default_usage = "store"
    usage = {}
    for item in args.usage:
        if item in ("none", "typical", "store"):
            default_usage = item
            continue
        metric, dist = _usage_item(item, baseline)
        usage[metric] = _distribution(dist)
    plans = [p for p in baseline.plans if baseline.plans[p].interval != "once"]
    return SyntheticSpec(
        count=args.customers,
        plan_mix={p: 1.0 for p in plans},
        usage=usage,
        months=args.months,
        seed=args.seed,
        default_usage=default_usage,
    )


def _usage_item(item: str, baseline: Any) -> tuple[str, str]:
    """(metric, distribution text) of a --usage METRIC=DIST naming a metric of the baseline."""
    metric, sep, dist = item.partition("=")
    if not sep or not metric:
        raise BadInput(f"--usage: {item!r} is not METRIC=DIST, 'typical' or 'none'")
    if metric not in baseline.metrics:
        raise BadInput(
            f"--usage: {metric!r} is not a metric of the baseline ({', '.join(sorted(baseline.metrics))})"
        )
    return metric, dist


def _distribution(text: str) -> Any:
    """number | lognormal:MEDIAN[:SIGMA] | uniform:LOW:HIGH"""
    from engine.simulation import Distribution

    kind, *figures = text.split(":")
    try:
        numbers = [float(x) for x in figures]
        if not figures:
            found = Distribution("constant", value=float(kind))
        elif kind == "lognormal" and len(numbers) in (1, 2):
            found = Distribution("lognormal", median=numbers[0], sigma=numbers[1] if len(numbers) > 1 else 0.8)
        elif kind == "uniform" and len(numbers) == 2:
            found = Distribution("uniform", low=numbers[0], high=numbers[1])
        else:
            raise ValueError(text)
    except ValueError:
        raise BadInput(f"--usage: {text!r} is a number, lognormal:MEDIAN[:SIGMA] or uniform:LOW:HIGH") from None
    problems = found.problems("--usage")
    if problems:
        raise BadInput("; ".join(problems))
    return found


def _stored_usage(catalog_name: str, notes: list[str]) -> dict[str, Any] | None:
    """The configured database's real usage per plan and metric (None, with a note, when
    there is no such database)."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine.store import Database
    from engine.system.stored_usage import stored_usage

    url = get_settings().database_url
    if _no_sqlite_file(url):
        notes.append(f"no database at {url}: typical usage instead of the store's")
        return None
    db = Database(url)
    try:
        with db.read_session() as session:
            found = stored_usage(session, catalog_name, cli_now())
        if not found:
            notes.append("the store has no usage in the last 3 full months: typical usage instead")
        return found
    except SQLAlchemyError:
        notes.append(f"{url} has no usage tables: typical usage instead of the store's")
        return None
    finally:
        db.dispose()


def _no_sqlite_file(url: str) -> bool:
    """A SQLite database URL whose file is not there (opening it would create an empty one)."""
    return url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists()


def _simulation_rules(args: argparse.Namespace, notes: list[str]) -> tuple[Any, Any]:
    """The promotion sources of both sides: the pricing rules in force (--rules) and the
    proposed ones (--draft-rules), each a memoising `RulePromotions` (None: no pricing rule)."""

    if args.rules == "none":
        texts: dict[str, str] = {}
        notes.append("--rules none: priced without the pricing rules (no promotion applies)")
    elif args.rules == "published":
        texts = _published_rules(notes)
    else:
        texts = _rules_from(args.rules, "--rules")
    runtime = _runtime(texts, "--rules")
    draft_runtime = (
        _runtime(_rules_from(args.draft_rules, "--draft-rules"), "--draft-rules") if args.draft_rules else runtime
    )
    promotions = _promotions(runtime)
    if draft_runtime is runtime:
        return promotions, promotions
    return promotions, _promotions(draft_runtime)


def _promotions(runtime: Any) -> Any:
    """A memoising promotion source on `runtime` (None: no pricing rule, no promotion)."""
    from engine import rules

    return rules.RulePromotions(runtime, memo=True) if runtime is not None else None


def _rules_from(path: str, flag: str) -> dict[str, str]:
    from engine import rules
    from engine.documents import DocumentError

    try:
        return rules.ruleset_texts(path)
    except (DocumentError, OSError) as exc:
        raise BadInput(f"{flag}: {exc}") from None


def _runtime(texts: dict[str, str], flag: str) -> Any:
    from engine import rules
    from engine.documents import DocumentError

    try:
        return rules.pricing_runtime(texts) if texts else None
    except DocumentError as exc:
        raise BadInput(f"{flag}: {exc}") from None


def _published_rules(notes: list[str]) -> dict[str, str]:
    """The text of every ruleset published in the configured database (none, with a note,
    when there is no such database)."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine import rules
    from engine.store import Database

    url = get_settings().database_url
    if _no_sqlite_file(url):
        notes.append(f"no database at {url}: priced without published pricing rules (give --rules DIR)")
        return {}
    db = Database(url)
    try:
        with db.read_session() as session:
            live = rules.live_versions(session)
            texts = {name: str(rules.ruleset_version(session, name, v).source) for name, v in live.items()}
    except SQLAlchemyError:
        notes.append(f"{url} has no published rulesets: priced without pricing rules (give --rules DIR)")
        return {}
    finally:
        db.dispose()
    if not texts:
        notes.append("no ruleset is published: priced without pricing rules (give --rules DIR)")
    return texts
