"""Bank and settlement reconciliation (import, the lines a person finishes, their decisions) and
the accounting export. Moved from engine/cli/commands/ops.py."""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from engine.cli.errors import BadInput
from engine.config import get_settings


def register(sub: Any) -> None:
    """Bank and settlement reconciliation, and the accounting export."""
    p = sub.add_parser("reconcile", help="import a settlement CSV or camt.053 statement and match it")
    p.add_argument("file")
    p.add_argument("--provider", default="sandbox")
    p.set_defaults(func=run_reconcile)

    p = sub.add_parser("reconcile-lines", help="bank lines a person must finish, with suggested invoices")
    p.add_argument("--status", default="open", choices=["open", "matched", "resolved", "pending", "skipped", "all"])
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=run_reconcile_lines)

    p = sub.add_parser(
        "reconcile-decide", help="confirm, split or dismiss an open bank line (recorded with who and why)"
    )
    p.add_argument("line_id")
    p.add_argument("action", choices=["confirm", "split", "dismiss"])
    p.add_argument(
        "--invoice",
        action="append",
        default=[],
        metavar="INVOICE[=AMOUNT]",
        help="an invoice to apply the transfer to (repeat for a split, each with =AMOUNT)",
    )
    p.add_argument("--reason", required=True, help="why: kept with the decision")
    p.set_defaults(func=run_reconcile_decide)

    p = sub.add_parser("export", help="accounting export")
    e = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    j = e.add_parser("journal", help="balanced double-entry journal lines as CSV")
    j.add_argument("--from", dest="start", required=True, help="ISO date")
    j.add_argument("--to", dest="end", required=True, help="ISO date (exclusive)")
    j.add_argument("--out", default="-")
    j.set_defaults(func=run_export_journal)


def _payments_db() -> tuple[Any, Any]:
    """The database and a payment service of this command's own (no provider is called by
    an import or an export, so an unset provider URL is fine)."""
    from engine.cli.commands.serve import migrate_database
    from engine.clock import SystemClock
    from engine.store import database_of
    from engine.system import payment_service

    settings = get_settings()
    migrate_database(settings.database_url)
    # This command receives no webhooks: a throwaway secret when none is configured.
    service = payment_service(
        settings.model_copy(
            update={
                "psp_url": settings.psp_url or "http://127.0.0.1:0",
                "psp_webhook_secret": settings.psp_webhook_secret or secrets.token_hex(16),
            }
        ),
        SystemClock(),
    )
    return database_of(settings), service


def run_reconcile(args: argparse.Namespace) -> int:
    from engine.payments import ReconciliationError, reconcile_file

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise BadInput(f"{args.file}: {exc.strerror or exc}") from None
    payouts = _payout_accounts()
    db, service = _payments_db()
    try:
        with db, db.session() as session:
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
    with db, db.session() as session:
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
        with db, db.session() as session:
            out = bank.decide(
                session,
                args.line_id,
                action=args.action,
                allocations=allocations,
                reason=args.reason,
                actor=f"cli:{getpass.getuser()}",
                service=service,
            )
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
    with db, db.session() as session:
        if args.out == "-":
            export_journal_csv(session, start, end, sys.stdout)
        else:
            with open(args.out, "w", newline="", encoding="utf-8") as out:
                summary = export_journal_csv(session, start, end, out)
            print(summary, file=sys.stderr)
    return 0
