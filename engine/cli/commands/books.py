"""`billing books ...`: the chart of accounts, trial balance, journal exports, revenue
recognition report and month close, for operators and finance (docs/books.md). Bad input exits
1 naming the file, line and field (or the option); nothing is written then."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, TextIO

from engine.cli.errors import BadInput
from engine.config import get_settings


def register(sub: Any) -> None:
    p = sub.add_parser("books", help="the books: chart of accounts, trial balance, exports, revenue recognition")
    b = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = b.add_parser("check-chart", help="validate a chart of accounts (YAML)")
    c.add_argument("file")
    c.set_defaults(func=run_check_chart)
    t = b.add_parser("trial-balance", help="debits, credits and balance per ledger account")
    t.add_argument("--from", dest="start", help="ISO date (default: the beginning)")
    t.add_argument("--to", dest="end", required=True, help="ISO date (exclusive)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=run_trial_balance)
    e = b.add_parser("export", help="the journal through the chart, as CSV or beancount")
    e.add_argument("--from", dest="start", required=True, help="ISO date")
    e.add_argument("--to", dest="end", required=True, help="ISO date (exclusive)")
    e.add_argument("--format", choices=["csv", "beancount"], default="csv")
    e.add_argument("--out", default="-")
    e.set_defaults(func=run_export)
    r = b.add_parser("revenue", help="billed, recognised and deferred revenue per month and plan")
    r.add_argument("--from", dest="start", required=True, help="YYYY-MM")
    r.add_argument("--to", dest="end", required=True, help="YYYY-MM")
    r.set_defaults(func=run_revenue)
    m = b.add_parser("close", help="close a month: move what is billed and not yet earned to deferred revenue")
    m.add_argument("month", help="YYYY-MM")
    m.add_argument("--currency", help="default: every currency billed")
    m.set_defaults(func=run_close)


def _day(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
    except ValueError:
        raise BadInput(f"{option}: {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _month(value: str, option: str) -> date:
    """A YYYY-MM from 1970-01 to 2199-12, as over HTTP (9999-12 has no next month to end on)."""
    try:
        month = date.fromisoformat(f"{value}-01")
    except ValueError:
        month = None
    if month is None or not 1970 <= month.year <= 2199:
        raise BadInput(f"{option}: {value!r} is not a month from 1970-01 to 2199-12 (YYYY-MM)")
    return month


def _chart() -> Any:
    from engine.documents import DocumentError
    from engine.payments import books

    try:
        return books.chart_for(get_settings().chart_of_accounts or None)
    except DocumentError as exc:
        raise BadInput(str(exc)) from None


@contextmanager
def _session(write: bool = False) -> Iterator[Any]:
    from engine.cli.commands.serve import require_migrated
    from engine.payments import UnbalancedEntry, books
    from engine.store import database_of

    settings = get_settings()
    require_migrated(settings.database_url)
    db = database_of(settings)
    try:
        with (db.session() if write else db.read_session()) as session:
            yield session
    except (books.UnmappedAccount, UnbalancedEntry) as exc:
        raise BadInput(str(exc)) from None
    finally:
        db.dispose()


def run_check_chart(args: argparse.Namespace) -> int:
    from engine.documents import DocumentError
    from engine.payments import books

    try:
        chart = books.load_chart(args.file)
    except DocumentError as exc:
        raise BadInput(f"{exc}\n{len(exc.problems)} error(s)") from None
    print(f"{args.file}: chart {chart.name!r}, {len(chart.all_accounts())} accounts, every posting has one")
    return 0


def run_trial_balance(args: argparse.Namespace) -> int:
    from engine.payments import books

    start, end = _day(args.start, "--from"), _day(args.end, "--to")
    assert end is not None
    with _session() as session:
        tb = books.trial_balance(session, _chart(), start, end)
    if args.json:
        print(json.dumps(tb.as_dict(), indent=2))
        return 0
    print(f"{'account':48} {'currency':8} {'debit':>14} {'credit':>14} {'balance':>14}")
    for r in tb.rows:
        print(f"{r.account:48} {r.currency:8} {r.debit:>14} {r.credit:>14} {r.balance:>14}")
    for currency, (debit, credit) in sorted(tb.totals().items()):
        print(f"{'total':48} {currency:8} {debit:>14} {credit:>14}")
    return 0 if tb.balanced else 1


def _write(args: argparse.Namespace, lines: list[Any], out: TextIO) -> None:
    from engine.payments import books

    if args.format == "csv":
        books.write_csv(lines, out)
    else:
        books.write_beancount(lines, out, title=f"journal {args.start} to {args.end}")


def run_export(args: argparse.Namespace) -> int:
    from engine.payments import books

    start, end = _day(args.start, "--from"), _day(args.end, "--to")
    assert start is not None and end is not None
    with _session() as session:
        lines = books.book_lines(session, _chart(), start, end)
    if args.out == "-":
        _write(args, lines, sys.stdout)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as out:
            _write(args, lines, out)
        print(f"{len(lines)} journal lines written to {args.out}", file=sys.stderr)
    return 0


def run_revenue(args: argparse.Namespace) -> int:
    from engine.payments import books

    first, last = _month(args.start, "--from"), _month(args.end, "--to")
    with _session() as session:
        rows = books.revenue_report(session, first, last)
    print(f"{'month':8} {'plan':20} {'currency':8} {'billed':>14} {'recognised':>14} {'deferred':>14}")
    for r in rows:
        print(f"{r.month.isoformat()[:7]:8} {r.plan:20} {r.currency:8} {r.billed:>14} {r.recognised:>14} {r.deferred:>14}")
    return 0


def _service() -> Any:
    from engine.clock import SystemClock
    from engine.payments import PaymentService
    from engine.store import database_of
    from engine.store.clock import StoredClock

    settings = get_settings()
    if not settings.test_clock:
        return PaymentService((), SystemClock())
    start = datetime.fromisoformat(settings.test_clock.replace("Z", "+00:00"))
    return PaymentService((), StoredClock(database_of(settings), start))


def run_close(args: argparse.Namespace) -> int:
    from engine.payments import PaymentError
    from engine.system.operations import month_close

    month = _month(args.month, "MONTH")
    service = _service()
    with _session(write=True) as session:
        try:
            entries = month_close.close_month(session, month, [args.currency] if args.currency else None,
                                              service=service)
        except PaymentError as exc:
            raise BadInput(f"{exc.field or 'month'}: {exc.message}") from None
    print(json.dumps({"month": args.month, "entries": entries}, indent=2))
    return 0
