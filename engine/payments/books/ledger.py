"""The journal as an accountant reads it: every line mapped through the chart of accounts, a
trial balance for any date range, and exports as CSV and as a beancount file.

Every reader checks the whole range first: an unbalanced entry (UnbalancedEntry) or a journal
account the chart has no place for (UnmappedAccount) stops it before anything is written.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.money import quantum
from engine.payments.books.chart import ChartOfAccounts
from engine.payments.journal import UnbalancedEntry
from engine.payments.models import JournalLine

ZERO = Decimal(0)


@dataclass(frozen=True)
class BookLine:
    entry_id: str
    line_no: int
    day: date
    journal_account: str
    account: str  # the chart's ledger account
    debit: Decimal
    credit: Decimal
    currency: str
    description: str
    reference: str


def book_lines(session: Session, chart: ChartOfAccounts, start: datetime | None, end: datetime) -> list[BookLine]:
    """Journal lines with start <= date < end (from the beginning when start is None), mapped
    and checked: each entry balances, each account has a place in the chart."""
    stmt = select(JournalLine).where(JournalLine.entry_date < end)
    if start is not None:
        stmt = stmt.where(JournalLine.entry_date >= start)
    rows = session.scalars(stmt.order_by(JournalLine.entry_date, JournalLine.entry_id, JournalLine.line_no)).all()
    per_entry: dict[str, Decimal] = defaultdict(Decimal)
    out = []
    for r in rows:
        per_entry[r.entry_id] += r.debit - r.credit
        q = quantum(r.currency)
        out.append(BookLine(r.entry_id, r.line_no, r.entry_date.date(), r.account, chart.account_for(r.account),
                            r.debit.quantize(q), r.credit.quantize(q), r.currency, r.description, r.reference or ""))
    bad = sorted(e for e, diff in per_entry.items() if diff != 0)
    if bad:
        raise UnbalancedEntry(f"unbalanced entries: {', '.join(bad[:10])}")
    return out


@dataclass(frozen=True)
class TrialRow:
    account: str
    currency: str
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        return self.debit - self.credit


@dataclass(frozen=True)
class TrialBalance:
    start: datetime | None
    end: datetime
    rows: list[TrialRow]

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        out: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
        for r in self.rows:
            out[r.currency][0] += r.debit
            out[r.currency][1] += r.credit
        return {c: (d, k) for c, (d, k) in out.items()}

    @property
    def balanced(self) -> bool:
        return all(d == k for d, k in self.totals().values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat(),
            "balanced": self.balanced,
            "accounts": [{"account": r.account, "currency": r.currency, "debit": str(r.debit),
                          "credit": str(r.credit), "balance": str(r.balance)} for r in self.rows],
            "totals": {c: {"debit": str(d), "credit": str(k)} for c, (d, k) in sorted(self.totals().items())},
        }


def trial_balance(session: Session, chart: ChartOfAccounts, start: datetime | None, end: datetime) -> TrialBalance:
    """Debits and credits per ledger account and currency over the range; debits equal credits
    per currency because every entry balances (book_lines checks it)."""
    sums: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for line in book_lines(session, chart, start, end):
        s = sums[(line.account, line.currency)]
        s[0] += line.debit
        s[1] += line.credit
    rows = [TrialRow(a, c, d, k) for (a, c), (d, k) in sorted(sums.items())]
    return TrialBalance(start, end, rows)


CSV_COLUMNS = ["entry_id", "date", "account", "journal_account", "debit", "credit", "currency",
               "description", "reference"]


def write_csv(lines: list[BookLine], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for ln in lines:
        writer.writerow([ln.entry_id, ln.day.isoformat(), ln.account, ln.journal_account, str(ln.debit),
                         str(ln.credit), ln.currency, ln.description, ln.reference])


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _entries(lines: list[BookLine]) -> Iterator[list[BookLine]]:
    group: list[BookLine] = []
    for ln in lines:
        if group and ln.entry_id != group[0].entry_id:
            yield group
            group = []
        group.append(ln)
    if group:
        yield group


def write_beancount(lines: list[BookLine], out: TextIO, *, title: str = "billing-engine journal") -> None:
    """A beancount file `bean-check` accepts: each account opened on its first day, each
    entry one transaction (debits positive, credits negative), its journal id as metadata."""
    out.write(f"option \"title\" {_quoted(title)}\n\n")
    opened: dict[str, date] = {}
    for ln in lines:
        opened.setdefault(ln.account, ln.day)
    for account, day in sorted(opened.items(), key=lambda kv: (kv[1], kv[0])):
        out.write(f"{day.isoformat()} open {account}\n")
    for entry in _entries(lines):
        first = entry[0]
        out.write(f"\n{first.day.isoformat()} * {_quoted(first.description)}\n")
        out.write(f"  entry: {_quoted(first.entry_id)}\n")
        if first.reference:
            out.write(f"  reference: {_quoted(first.reference)}\n")
        for ln in entry:
            amount = ln.debit - ln.credit
            out.write(f"  {ln.account}  {amount} {ln.currency}\n")
