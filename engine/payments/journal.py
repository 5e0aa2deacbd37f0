"""Double-entry journal and its CSV export for the books.

Entries are posted in the same transaction as the state change they describe, so the journal
never disagrees with the payments ledger. Every entry is checked balanced when posted, and
again on export.

Accounts (names, so a chart of accounts can map them):
  receivables            accounts receivable (debit when an invoice is issued)
  revenue:<plan>         revenue per plan (credit); revenue:unassigned without a breakdown
  tax_payable            tax collected (credit)
  cash:<provider>        money held at a provider or in the bank ("cash:bank", "cash:manual")
  cash:bank:<account>    a bank transfer read from a statement: the statement's account (IBAN)
  provider_fees          fees the provider kept (debit, from settlement reports)
  refunds                refunds paid out (debit, a contra-revenue account)
  customer_credit        overpayments owed back to customers (credit; debit when applied)
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.money import quantum
from engine.payments.models import JournalLine

ZERO = Decimal(0)

RECEIVABLES = "receivables"
TAX_PAYABLE = "tax_payable"
PROVIDER_FEES = "provider_fees"
REFUNDS = "refunds"
CUSTOMER_CREDIT = "customer_credit"


def revenue_account(plan: str | None) -> str:
    return f"revenue:{plan or 'unassigned'}"


def cash_account(provider: str) -> str:
    return f"cash:{provider}"


def bank_cash_account(account: str | None) -> str:
    """The bank account a statement line was booked on (its IBAN or account id), so a chart
    can place each account on its own ledger account (`cash.bank_accounts`); the chart places
    an account it does not name on the bank's (`cash.providers.bank`), as `cash:bank`. A
    statement that names no account comes as "bank" (camt.py): plain `cash:bank`."""
    return f"cash:bank:{account}" if account and account != "bank" else cash_account("bank")


def received_on(session: Session, payment_id: str, provider: str) -> str:
    """The cash account a payment's entry (`pay:<id>`) debited: a refund or a bank's charges
    leave the account the money came in on (a bank transfer's is its statement's account)."""
    found = session.scalars(select(JournalLine.account).where(
        JournalLine.entry_id == f"pay:{payment_id}", JournalLine.debit > 0, JournalLine.account.startswith("cash:"))
    ).first()
    return found or cash_account(provider)


class UnbalancedEntry(ValueError):
    pass


@dataclass(frozen=True)
class Posting:
    account: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO


def post_entry(
    session: Session,
    entry_id: str,
    when: datetime,
    currency: str,
    postings: Sequence[Posting],
    description: str,
    reference: str | None = None,
) -> None:
    """Write one journal entry. Zero postings are dropped; debits must equal credits."""
    lines = [p for p in postings if p.debit or p.credit]
    if not lines:
        return
    debit = sum((p.debit for p in lines), ZERO)
    credit = sum((p.credit for p in lines), ZERO)
    if debit != credit:
        raise UnbalancedEntry(f"entry {entry_id}: debits {debit} != credits {credit}")
    for no, p in enumerate(lines, start=1):
        if p.debit < 0 or p.credit < 0:
            raise UnbalancedEntry(f"entry {entry_id}: negative posting on {p.account}")
        session.add(
            JournalLine(
                entry_id=entry_id,
                line_no=no,
                entry_date=when,
                account=p.account,
                debit=p.debit,
                credit=p.credit,
                currency=currency,
                description=description[:200],
                reference=reference,
            )
        )


EXPORT_COLUMNS = ["entry_id", "date", "account", "debit", "credit", "currency", "description", "reference"]


@dataclass(frozen=True)
class ExportSummary:
    entries: int
    lines: int
    debits: dict[str, Decimal]  # per currency
    credits: dict[str, Decimal]


def export_journal_csv(session: Session, start: datetime, end: datetime, out: TextIO) -> ExportSummary:
    """Journal lines with start <= date < end as CSV (columns EXPORT_COLUMNS). Raises
    UnbalancedEntry, before writing anything, if any entry does not balance."""
    rows = session.scalars(
        select(JournalLine)
        .where(JournalLine.entry_date >= start, JournalLine.entry_date < end)
        .order_by(JournalLine.entry_date, JournalLine.entry_id, JournalLine.line_no)
    ).all()
    per_entry: dict[str, Decimal] = defaultdict(Decimal)
    debits: dict[str, Decimal] = defaultdict(Decimal)
    credits: dict[str, Decimal] = defaultdict(Decimal)
    for line in rows:
        per_entry[line.entry_id] += line.debit - line.credit
        debits[line.currency] += line.debit
        credits[line.currency] += line.credit
    bad = [e for e, diff in per_entry.items() if diff != 0]
    if bad:
        raise UnbalancedEntry(f"unbalanced entries: {', '.join(sorted(bad)[:10])}")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for line in rows:
        writer.writerow(
            [
                line.entry_id,
                line.entry_date.date().isoformat(),
                line.account,
                str(line.debit.quantize(quantum(line.currency))),
                str(line.credit.quantize(quantum(line.currency))),
                line.currency,
                line.description,
                line.reference or "",
            ]
        )
    return ExportSummary(len(per_entry), len(rows), dict(debits), dict(credits))
