"""Revenue recognition, stored: each invoice line's schedule (written with its receivable),
credit notes reversing it, the report of billed / recognised / deferred per month and plan, and
the month-close journal entry that moves what is not earned yet to deferred revenue.

The journal books revenue when an invoice is issued (engine/payments/receivables.py). Closing a
month posts, per plan and price type, the change of what is billed but not yet earned:
Dr revenue / Cr deferred revenue when it grew, the other way when it shrank. After a close the
revenue accounts hold what was earned, the deferred-revenue account what is still to be earned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from engine.money import quantum, to_decimal
from engine.payments import journal
from engine.payments.books.revrec import ScheduleLine, credit_schedule, line_schedule, month_of, next_month
from engine.payments.journal import Posting
from engine.payments.models import JournalLine, RevenueScheduleRow
from engine.payments.reads import ONE_BY_ONE, Reads
from engine.payments.service import CollectableInvoice, PaymentError, PaymentService

ZERO = Decimal(0)
DEFERRED = "deferred_revenue"
UNBILLED = "unbilled_revenue"  # an asset: earned, not invoiced yet (the chart's, or receivables)
PRICE_TYPES = ("subscription", "usage", "one_time")


def _day(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value else None


def _line(raw: Mapping[str, Any], currency: str, delivered: date) -> ScheduleLine:
    price_type = str(raw.get("price_type") or "subscription")
    if price_type not in PRICE_TYPES:
        raise PaymentError(f"{price_type!r} is not one of {', '.join(PRICE_TYPES)}", "lines.price_type")
    return ScheduleLine(to_decimal(raw["amount"], "lines.amount"), currency, price_type, delivered,
                        _day(raw.get("period_start")), _day(raw.get("period_end")))


def invoice_rows(invoice: CollectableInvoice, lines: Sequence[Mapping[str, Any]], billed: date) -> list[dict[str, Any]]:
    """The schedule rows of an invoice's lines (as invoice.finalized carries them), not written."""
    source, rows = f"inv:{invoice.invoice_id}", []
    for no, raw in enumerate(lines, start=1):
        line = _line(raw, invoice.currency, billed)
        plan = str(raw.get("plan") or "unassigned")
        rows += [{"source_id": source, "invoice_id": invoice.invoice_id, "line_no": no,
                  "customer_id": invoice.customer_id, "plan": plan, "price_type": line.price_type,
                  "currency": invoice.currency, "billed_on": billed, "month": m, "amount": v}
                 for m, v in line_schedule(line) if v]
    return rows


def write_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Schedule rows in one go: COPY on PostgreSQL (a year of invoices is a million rows), one
    executemany elsewhere."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(RevenueScheduleRow), rows)
        return
    session.flush()
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY pay_revenue_schedule ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] if c != "amount" else str(row[c]) for c in COLUMNS])


COLUMNS = ("source_id", "invoice_id", "line_no", "customer_id", "plan", "price_type", "currency", "billed_on",
           "month", "amount")


@dataclass
class PendingSchedules:
    """Schedule rows a batch of invoice.finalized adds, written together at its end (or before
    anything reads them): the usage accruals their invoices replace are deleted in one statement
    and the rows written in one go, rather than two statements an invoice."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    accruals: set[str] = field(default_factory=set)  # accrual_key of each subscription invoiced

    def write(self, session: Session) -> None:
        if self.accruals:
            # Only accrual rows go: an invoice's own rows never carry an accrual key.
            session.execute(delete(RevenueScheduleRow).where(RevenueScheduleRow.invoice_id.in_(sorted(self.accruals))))
        write_rows(session, self.rows)
        self.rows, self.accruals = [], set()


def schedule_invoice(session: Session, invoice: CollectableInvoice, props: Mapping[str, Any], *,
                     service: PaymentService, reads: Reads = ONE_BY_ONE,
                     pending: PendingSchedules | None = None) -> int:
    """The schedule of every line invoice.finalized carries (none without `lines`); written
    once per invoice, now or with the batch's `pending`. Returns the number of rows."""
    lines = [x for x in props.get("lines") or [] if isinstance(x, dict) and "amount" in x]
    source = f"inv:{invoice.invoice_id}"
    if not lines or reads.scheduled(session, source):
        return 0
    rows = invoice_rows(invoice, lines, service.now().date())
    out = pending if pending is not None else PendingSchedules()
    if props.get("subscription_id") and any(r["price_type"] == "usage" for r in rows):
        # Its usage is invoiced now: the close's accrual of it (`accrue_usage`) gives way to
        # the invoice's own rows, and the next close reverses the accrual in the journal.
        out.accruals.add(accrual_key(str(props["subscription_id"])))
    out.rows += rows
    reads.scheduled_now(source)
    if pending is None:
        out.write(session)
    return len(rows)


# --- usage earned and not invoiced yet ---------------------------------------------------------


@dataclass(frozen=True)
class UsageAccrual:
    """A subscription's usage earned by a month's end, not invoiced yet (net, before tax), as
    sales prices it (engine/sales/accrual.py): the close accrues it on `plan`'s usage revenue."""

    customer_id: str
    subscription_id: str
    plan: str
    currency: str
    amount: Decimal


def accrual_key(subscription_id: str) -> str:
    """The schedule rows' `invoice_id` of a subscription's accrued usage: not an invoice yet."""
    return f"accrual:{subscription_id}"[:64]


# Accrued rows are billed on no day a report reaches: earned, not billed, until the invoice
# replaces them (so the report's deferred is negative meanwhile, as for usage invoiced late).
NOT_BILLED = date(9999, 12, 1)


def accrue_usage(session: Session, month: date, currency: str, accruals: Sequence[UsageAccrual]) -> None:
    """Schedule rows for what each open period's usage earned in `month` (source
    `accrual:YYYY-MM`): what the period's usage prices to at the month's end less what earlier
    closes accrued of it, so the close's unbilled entry (`_unbilled_by_key`) and the revenue
    report both include it."""
    label, rows = month.isoformat()[:7], []
    for no, a in enumerate((a for a in accruals if a.currency == currency), start=1):
        key = accrual_key(a.subscription_id)
        before = sum(session.scalars(select(RevenueScheduleRow.amount).where(RevenueScheduleRow.invoice_id == key)),
                     ZERO)
        if a.amount - before:
            rows.append({"source_id": f"accrual:{label}:{currency}", "invoice_id": key, "line_no": no,
                         "customer_id": a.customer_id, "plan": a.plan, "price_type": "usage", "currency": currency,
                         "billed_on": NOT_BILLED, "month": month, "amount": a.amount - before})
    write_rows(session, rows)


@dataclass(frozen=True)
class CreditSplit:
    net: Decimal  # what the credit takes off revenue
    tax: Decimal  # what it takes off tax payable
    tax_account: str


def _invoice_tax(session: Session, invoice_id: str) -> tuple[str, Decimal, Decimal] | None:
    """The invoice's tax account, tax and gross (what it was issued for, tax included), from
    its entry; None when it carries no tax."""
    lines = session.execute(select(JournalLine.account, JournalLine.debit, JournalLine.credit)
                            .where(JournalLine.entry_id == f"inv:{invoice_id}")).all()
    taxes = [(a, c - d) for a, d, c in lines if a.startswith(journal.TAX_PAYABLE)]
    tax = sum((t for _, t in taxes), ZERO)
    gross = sum((d for a, d, _ in lines if a in (journal.RECEIVABLES, journal.CUSTOMER_CREDIT)), ZERO)
    if not taxes or not tax or gross <= 0:
        return None
    return taxes[0][0], tax, gross


def invoice_gross(session: Session, invoice_id: str) -> Decimal:
    """What an invoice was issued for, tax included, from its entry (receivables and the
    customer credit sales applied): a refund beyond it pays back an overpayment's credit."""
    return sum(session.scalars(select(JournalLine.debit).where(
        JournalLine.entry_id == f"inv:{invoice_id}",
        JournalLine.account.in_((journal.RECEIVABLES, journal.CUSTOMER_CREDIT)))), ZERO)


def beyond(before: Decimal, amount: Decimal, gross: Decimal) -> Decimal:
    """The part of a refund of `amount`, after `before` was refunded, beyond the invoice's
    `gross`: what the refunds so far exceed it by, less what they exceeded it by before."""
    return max(before + amount - gross, ZERO) - max(before - gross, ZERO)


def _tax_of(total: Decimal, tax: Decimal, gross: Decimal, currency: str) -> Decimal:
    return (total * tax / gross).quantize(quantum(currency), ROUND_HALF_EVEN)


def split_credit(session: Session, invoice_id: str, total: Decimal, currency: str) -> CreditSplit:
    """A credit note's total (tax included) split as the invoice's was: net and tax in the
    invoice's proportion (tax rounded half-even, net the rest), tax on the invoice's account."""
    found = _invoice_tax(session, invoice_id)
    if found is None:
        return CreditSplit(total, ZERO, journal.TAX_PAYABLE)
    account, tax, gross = found
    part = _tax_of(total, tax, gross, currency)
    return CreditSplit(total - part, part, account)


def split_refund(session: Session, invoice_id: str, before: Decimal, amount: Decimal, currency: str) -> CreditSplit:
    """A refund of `amount` of an invoice after `before` was refunded already, split as a
    credit note is, on the cumulative refund: its tax is round(refunded after x tax / gross) -
    round(refunded before x tax / gross), half-even, so the shares telescope and the refund that
    brings the invoice's refunds to its total reverses exactly the rest of its tax (what is
    refunded beyond the invoice's total carries none)."""
    found = _invoice_tax(session, invoice_id)
    if found is None:
        return CreditSplit(amount, ZERO, journal.TAX_PAYABLE)
    account, tax, gross = found
    part = (_tax_of(min(before + amount, gross), tax, gross, currency)
            - _tax_of(min(before, gross), tax, gross, currency))
    return CreditSplit(amount - part, part, account)


def schedule_credit(session: Session, invoice_id: str, note_id: str, net: Decimal, *, when: datetime) -> int:
    """A credit note taking `net` (before tax) off an invoice: each of the invoice's lines is
    reversed in proportion to its share (credit_schedule)."""
    rows = list(session.scalars(select(RevenueScheduleRow).where(RevenueScheduleRow.invoice_id == invoice_id)
                                .order_by(RevenueScheduleRow.line_no, RevenueScheduleRow.month)))
    total = sum((r.amount for r in rows), ZERO)
    if not rows or not net or total <= 0:
        return 0
    by_line: dict[tuple[int, str, str], list[RevenueScheduleRow]] = defaultdict(list)
    for r in rows:
        by_line[(r.line_no, r.plan, r.price_type)].append(r)
    first, issued, out, left = rows[0], when.date(), [], net
    keys = sorted(by_line)
    for k, key in enumerate(keys):
        line_rows = by_line[key]
        share = sum((r.amount for r in line_rows), ZERO)
        # Each line's share rounded half-even; the last line takes what is left, so the
        # parts add up to the credit exactly.
        part = left if k == len(keys) - 1 else (net * share / total).quantize(quantum(first.currency), ROUND_HALF_EVEN)
        left -= part
        out += [dict(source_id=f"cn:{note_id}", invoice_id=invoice_id, line_no=key[0], customer_id=first.customer_id,
                     plan=key[1], price_type=key[2], currency=first.currency, billed_on=issued, month=m, amount=v)
                for m, v in credit_schedule(part, first.currency, [(r.month, r.amount) for r in line_rows], issued) if v]
    if out:
        session.execute(insert(RevenueScheduleRow), out)
    return len(out)


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevenueRow:
    month: date
    plan: str
    currency: str
    billed: Decimal  # invoiced that month, net of credit notes, before tax
    recognised: Decimal  # earned that month
    deferred: Decimal  # at the month's end: billed so far less earned so far

    def as_dict(self) -> dict[str, Any]:
        return {"month": self.month.isoformat()[:7], "plan": self.plan, "currency": self.currency,
                "billed": str(self.billed), "recognised": str(self.recognised), "deferred": str(self.deferred)}


_Sums = dict[tuple[date, str, str], Decimal]


def revenue_report(session: Session, first: date, last: date, *, customer_id: str | None = None) -> list[RevenueRow]:
    """Per month from `first` to `last` (months, inclusive), plan and currency: billed,
    recognised, and deferred at the month's end (cumulative from the first schedule row);
    of one customer's invoices when `customer_id` is given."""
    first, last = month_of(first), month_of(last)
    billed, earned, before = _revenue_sums(session, first, last, customer_id)
    keys = sorted({(p, c) for _, p, c in billed} | {(p, c) for _, p, c in earned} | set(before))
    out, month = [], first
    running = dict(before)
    while month <= last:
        for plan, currency in keys:
            bill, earn = billed.get((month, plan, currency), ZERO), earned.get((month, plan, currency), ZERO)
            running[(plan, currency)] = running.get((plan, currency), ZERO) + bill - earn
            if bill or earn or running[(plan, currency)]:
                q = quantum(currency)
                out.append(RevenueRow(month, plan, currency, bill.quantize(q), earn.quantize(q),
                                      running[(plan, currency)].quantize(q)))
        month = next_month(month)
    return out


def _revenue_sums(session: Session, first: date, last: date,
                  customer_id: str | None) -> tuple[_Sums, _Sums, dict[tuple[str, str], Decimal]]:
    """(billed, earned) per (month, plan, currency) from `first` to `last`, and what was
    deferred before `first` per (plan, currency)."""
    billed: _Sums = defaultdict(Decimal)
    earned: _Sums = defaultdict(Decimal)
    before: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    stmt = select(RevenueScheduleRow.billed_on, RevenueScheduleRow.month, RevenueScheduleRow.plan,
                  RevenueScheduleRow.currency, RevenueScheduleRow.amount)
    if customer_id is not None:
        stmt = stmt.where(RevenueScheduleRow.customer_id == customer_id)
    for billed_on, month, plan, currency, amount in session.execute(stmt):
        b = month_of(billed_on)
        if b < first:
            before[(plan, currency)] += amount
        elif b <= last:
            billed[(b, plan, currency)] += amount
        if month < first:
            before[(plan, currency)] -= amount
        elif month <= last:
            earned[(month, plan, currency)] += amount
    return billed, earned, before


# --- month close -----------------------------------------------------------------------------


def month_end(month: date) -> datetime:
    return datetime.combine(next_month(month_of(month)), time(0), UTC)


def _deferred_by_key(session: Session, month: date, currency: str) -> dict[str, Decimal]:
    """What was billed by the end of `month` and is earned after it, per "plan:price_type"."""
    end = next_month(month)
    out: dict[str, Decimal] = defaultdict(Decimal)
    # Amounts are stored as exact decimal text: they are added here, not by the database.
    stmt = (select(RevenueScheduleRow.plan, RevenueScheduleRow.price_type, RevenueScheduleRow.amount)
            .where(RevenueScheduleRow.currency == currency, RevenueScheduleRow.billed_on < end,
                   RevenueScheduleRow.month >= end,
                   # A pack's rows (engine/payments/books/credits.py): the journal's credits
                   # entries defer and earn it as it goes; the close would do it twice.
                   RevenueScheduleRow.source_id.not_like("credits:%")))
    for plan, price_type, amount in session.execute(stmt):
        out[f"{plan}:{price_type}"] += amount
    return out


def _unbilled_by_key(session: Session, month: date, currency: str) -> dict[str, Decimal]:
    """What is earned by the end of `month` and billed after it (usage invoiced in arrears the
    month after), per "plan:price_type": as far as it is invoiced when the month is closed."""
    end = next_month(month)
    out: dict[str, Decimal] = defaultdict(Decimal)
    stmt = (select(RevenueScheduleRow.plan, RevenueScheduleRow.price_type, RevenueScheduleRow.amount)
            .where(RevenueScheduleRow.currency == currency, RevenueScheduleRow.billed_on >= end,
                   RevenueScheduleRow.month < end, RevenueScheduleRow.source_id.not_like("credits:%")))
    for plan, price_type, amount in session.execute(stmt):
        out[f"{plan}:{price_type}"] += amount
    return out


def _posted_by_key(session: Session, currency: str, prefix: str = "revrec:") -> dict[str, Decimal]:
    """What earlier closes' `prefix` entries moved out of each revenue account (debit -
    credit), per key."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    stmt = select(JournalLine.account, JournalLine.debit, JournalLine.credit).where(
        JournalLine.entry_id.like(f"{prefix}%"), JournalLine.currency == currency,
        JournalLine.account.like("revenue:%"))
    for account, debit, credit in session.execute(stmt):
        out[account.removeprefix("revenue:")] += debit - credit
    return out


def _moves(target: Mapping[str, Decimal], posted: Mapping[str, Decimal], other: str) -> list[Posting]:
    """Per key, the revenue account moved by (target - posted) against `other`: Dr revenue / Cr
    other when it grew, the other way when it shrank."""
    postings: list[Posting] = []
    for key in sorted(set(target) | set(posted)):
        delta = target.get(key, ZERO) - posted.get(key, ZERO)
        account = journal.revenue_account(key)
        postings += [Posting(account, debit=delta), Posting(other, credit=delta)] if delta > 0 else \
            [Posting(account, credit=-delta), Posting(other, debit=-delta)] if delta < 0 else []
    return postings


def _posted(session: Session, entry_id: str) -> bool:
    return session.scalar(select(JournalLine.id).where(JournalLine.entry_id == entry_id).limit(1)) is not None


def currencies(session: Session) -> list[str]:
    return sorted(session.scalars(select(RevenueScheduleRow.currency).distinct()))


def close_month(session: Session, month: date, currency: str, *, service: PaymentService,
                accruals: Sequence[UsageAccrual] = ()) -> dict[str, Any]:
    """Post the month-close entry `revrec:YYYY-MM:CUR` (once: closing again returns what was
    posted). A month is closed only once it has ended on the system's clock. `accruals`: the
    usage of open periods earned by the month's end (sales prices it), accrued with what was
    invoiced after the month."""
    month = month_of(month)
    end = month_end(month)
    if service.now() < end:
        raise PaymentError(f"{month.isoformat()[:7]} has not ended yet (today is {service.now().date()})", "month")
    label = month.isoformat()[:7]
    entry_id, accrual_id = f"revrec:{label}:{currency}", f"unbilled:{label}:{currency}"
    when = end - timedelta(seconds=1)
    if not _posted(session, entry_id):
        postings = _moves(_deferred_by_key(session, month, currency), _posted_by_key(session, currency), DEFERRED)
        journal.post_entry(session, entry_id, when, currency, postings, f"revenue recognition: close of {label}",
                           entry_id)
    if not _posted(session, accrual_id):
        accrue_usage(session, month, currency, accruals)
        # Earned, not yet billed: Dr unbilled_revenue / Cr revenue. Its own entry, so a month
        # closed before the accrual existed gets it on its next close, and each close moves
        # only the change: the next month's close reverses what was invoiced meanwhile.
        # (The revenue accounts move by minus what is unbilled: credited.)
        postings = _moves({k: -v for k, v in _unbilled_by_key(session, month, currency).items()},
                          _posted_by_key(session, currency, "unbilled:"), UNBILLED)
        journal.post_entry(session, accrual_id, when, currency, postings,
                           f"unbilled revenue: close of {label}", accrual_id)
    session.flush()
    lines = session.execute(select(JournalLine.account, JournalLine.debit, JournalLine.credit)
                            .where(JournalLine.entry_id.in_((entry_id, accrual_id)))
                            .order_by(JournalLine.entry_id, JournalLine.line_no)).all()
    q = quantum(currency)
    return {"entry_id": entry_id, "month": month.isoformat()[:7], "currency": currency,
            "postings": [{"account": a, "debit": str(d.quantize(q)), "credit": str(c.quantize(q))}
                         for a, d, c in lines]}
