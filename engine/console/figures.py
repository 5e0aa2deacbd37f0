"""The overview's figures: pure functions over the facts the sales, payments and dunning read
functions return (`engine.console.overview` reads them). No I/O here, so a test can compute
every figure by hand on a seeded history and compare.

Definitions (docs/console.md, "Overview"):

- MRR on a day: for each recurring invoice (a subscription's start or cycle invoice, issued and
  not void) whose service period contains the day, its net amount before tax (subtotal minus
  discount) per month of that period; a period of 28 days or more counts as whole months
  (days / 30.4375, rounded: a month, a quarter, a year), a shorter one as that fraction of a
  month. ARR is 12 x MRR. Figures are rounded to the cent once, at the end.
- Customer movements in a month: each customer's MRR on the month's last day against the day
  before the month: new (from nothing), upgraded (more), downgraded (less), churned (to nothing).
- Net revenue retention over the range: what the customers paying on the day before the range
  pay on its last day, as a percentage of what they paid then.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol, TypeVar

from engine.sales.reporting import RECURRING_REASONS, InvoiceFact

CENT = Decimal("0.01")
ZERO = Decimal(0)
DAYS_PER_MONTH = Decimal("30.4375")  # 365.25 / 12
COLLECTED = ("succeeded", "refunded")  # a refunded payment was collected first
AGE_BUCKETS = (("not yet due", None, 0), ("1–30 days", 1, 30), ("31–60 days", 31, 60),
               ("61–90 days", 61, 90), ("over 90 days", 91, None))


def cents(v: Decimal) -> Decimal:
    return v.quantize(CENT, rounding=ROUND_HALF_UP)


# What the figures read of the payments side, as the fields they use: engine.payments.reporting's
# PaymentFact, RefundFact and ReceivableFact have them (engine/system/console_readers.py binds
# those reads), so this module names sales alone.
class PaidFact(Protocol):
    @property
    def invoice_id(self) -> str | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def status(self) -> str: ...  # pending | succeeded | failed | refunded
    @property
    def amount(self) -> Decimal: ...
    @property
    def on(self) -> date: ...  # captured (a success), else attempted


class RefundedFact(Protocol):
    @property
    def invoice_id(self) -> str | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def on(self) -> date: ...


class OwedFact(Protocol):
    @property
    def invoice_id(self) -> str: ...
    @property
    def customer_id(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def outstanding(self) -> Decimal: ...
    @property
    def due_on(self) -> date: ...


@dataclass(frozen=True)
class Facts:
    """What the read functions returned, before filtering."""

    invoices: Sequence[InvoiceFact]
    payments: Sequence[PaidFact] = ()
    refunds: Sequence[RefundedFact] = ()
    receivables: Sequence[OwedFact] = ()
    dunning: dict[str, str] = field(default_factory=dict)  # customer -> recorded state
    invoice_catalogs: dict[str, str] = field(default_factory=dict)  # for payments, refunds, receivables


@dataclass(frozen=True)
class MonthRevenue:
    month: date
    invoiced: Decimal
    collected: Decimal
    refunded: Decimal


@dataclass(frozen=True)
class Movement:
    month: date
    new: int
    upgraded: int
    downgraded: int
    churned: int
    new_mrr: Decimal
    expansion_mrr: Decimal
    contraction_mrr: Decimal
    churned_mrr: Decimal


@dataclass(frozen=True)
class FailedMonth:
    month: date
    count: int
    amount: Decimal


@dataclass(frozen=True)
class Bucket:
    name: str
    count: int
    amount: Decimal


@dataclass(frozen=True)
class PlanFigure:
    plan: str
    customers: int
    mrr: Decimal


@dataclass(frozen=True)
class Overview:
    currency: str
    catalog: str | None
    start: date
    end: date  # the last day of the range
    mrr: Decimal
    arr: Decimal
    mrr_by_month: list[tuple[date, Decimal]]
    revenue: list[MonthRevenue]
    movements: list[Movement]
    net_revenue_retention: Decimal | None  # percent, one decimal; None without customers at the start
    failed_payments: list[FailedMonth]
    receivables: list[Bucket]
    dunning: list[tuple[str, int]]
    top_plans: list[PlanFigure]


# -- the figures -------------------------------------------------------------------------------


def months_in(start: date, end: date) -> list[date]:
    """The first day of each calendar month that [start, end] touches."""
    out, m = [], start.replace(day=1)
    while m <= end:
        out.append(m)
        m = _next_month(m)
    return out


def monthly_value(f: InvoiceFact) -> Decimal:
    """The invoice's net amount per month of its service period (unrounded)."""
    assert f.period_start is not None and f.period_end is not None
    days = Decimal((f.period_end - f.period_start).days)
    months = (days / DAYS_PER_MONTH).to_integral_value(ROUND_HALF_UP) if days >= 28 else days / DAYS_PER_MONTH
    return (f.subtotal - f.discount) / months if months else ZERO


class Recurring:
    """The recurring invoices as spans of service with their monthly value (each computed
    once), and each customer's MRR on a day (remembered: the figures ask for few days)."""

    def __init__(self, invoices: Iterable[InvoiceFact]) -> None:
        self.spans = [(f.period_start, f.period_end, f.customer_id, f.plan_id or "—", monthly_value(f))
                      for f in invoices if f.reason in RECURRING_REASONS and f.period_start and f.period_end]
        self._memo: dict[date, dict[str, Decimal]] = {}

    def covering(self, on: date) -> Iterable[tuple[date, date, str, str, Decimal]]:
        return (x for x in self.spans if x[0] <= on < x[1])

    def by_customer(self, on: date) -> dict[str, Decimal]:
        if on not in self._memo:
            out: dict[str, Decimal] = defaultdict(Decimal)
            for _s, _e, customer, _p, value in self.covering(on):
                out[customer] += value
            self._memo[on] = dict(out)
        return self._memo[on]

    def mrr(self, on: date) -> Decimal:
        return cents(sum(self.by_customer(on).values(), ZERO))


def top_plans(recurring: Recurring, on: date, limit: int = 10) -> list[PlanFigure]:
    value: dict[str, Decimal] = defaultdict(Decimal)
    customers: dict[str, set[str]] = defaultdict(set)
    for _s, _e, customer, plan, v in recurring.covering(on):
        value[plan] += v
        customers[plan].add(customer)
    ranked = sorted(value, key=lambda p: (-value[p], p))[:limit]
    return [PlanFigure(p, len(customers[p]), cents(value[p])) for p in ranked]


def revenue_by_month(facts: Facts, months: Sequence[date], start: date, end: date) -> list[MonthRevenue]:
    invoiced: dict[date, Decimal] = defaultdict(Decimal)
    collected: dict[date, Decimal] = defaultdict(Decimal)
    refunded: dict[date, Decimal] = defaultdict(Decimal)
    for f in facts.invoices:
        if start <= f.issued_on <= end:
            invoiced[f.issued_on.replace(day=1)] += f.total
    for p in facts.payments:
        if p.status in COLLECTED and start <= p.on <= end:
            collected[p.on.replace(day=1)] += p.amount
    for r in facts.refunds:
        if start <= r.on <= end:
            refunded[r.on.replace(day=1)] += r.amount
    return [MonthRevenue(m, cents(invoiced[m]), cents(collected[m]), cents(refunded[m]))
            for m in months]


def movements(recurring: Recurring, months: Sequence[date], start: date, last: date) -> list[Movement]:
    out = []
    before = recurring.by_customer(start - timedelta(days=1))
    for m in months:
        after = recurring.by_customer(min(_next_month(m) - timedelta(days=1), last))
        out.append(_movement(m, before, after))
        before = after
    return out


def _movement(month: date, before: dict[str, Decimal], after: dict[str, Decimal]) -> Movement:
    counts: Counter[str] = Counter()
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for cid in before.keys() | after.keys():
        a, b = before.get(cid, ZERO), after.get(cid, ZERO)
        kind = ("new" if a == 0 else "upgraded") if b > a else ("churned" if b == 0 else "downgraded") if b < a else ""
        if kind:
            counts[kind] += 1
            sums[kind] += abs(b - a)
    return Movement(month, counts["new"], counts["upgraded"], counts["downgraded"], counts["churned"],
                    cents(sums["new"]), cents(sums["upgraded"]), cents(sums["downgraded"]), cents(sums["churned"]))


def net_revenue_retention(recurring: Recurring, start: date, last: date) -> Decimal | None:
    before = recurring.by_customer(start - timedelta(days=1))
    base = sum((v for v in before.values() if v > 0), ZERO)
    if base <= 0:
        return None
    after = recurring.by_customer(last)
    kept = sum((after.get(cid, ZERO) for cid, v in before.items() if v > 0), ZERO)
    return (kept * 100 / base).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def failed_payments(payments: Iterable[PaidFact], months: Sequence[date], start: date, end: date) -> list[FailedMonth]:
    count: Counter[date] = Counter()
    amount: dict[date, Decimal] = defaultdict(Decimal)
    for p in payments:
        if p.status == "failed" and start <= p.on <= end:
            count[p.on.replace(day=1)] += 1
            amount[p.on.replace(day=1)] += p.amount
    return [FailedMonth(m, count[m], cents(amount[m])) for m in months]


def receivables_by_age(receivables: Iterable[OwedFact], as_of: date) -> list[Bucket]:
    count: Counter[str] = Counter()
    amount: dict[str, Decimal] = defaultdict(Decimal)
    for r in receivables:
        if r.outstanding <= 0:
            continue
        name = _bucket((as_of - r.due_on).days)
        count[name] += 1
        amount[name] += r.outstanding
    return [Bucket(name, count[name], cents(amount[name])) for name, _, _ in AGE_BUCKETS]


# The last day late of each bucket but the open-ended last: the buckets are contiguous, so the
# first whose last day is not before `days_late` is the one.
_LAST_DAYS = tuple(hi for _, _, hi in AGE_BUCKETS[:-1])


def _bucket(days_late: int) -> str:
    return AGE_BUCKETS[bisect_left(_LAST_DAYS, days_late)][0]


def dunning_pipeline(states: dict[str, str], customers: Iterable[str]) -> list[tuple[str, int]]:
    """How many of `customers` are in each dunning state (`active` when none is recorded)."""
    counts = Counter(states.get(cid, "active") for cid in set(customers))
    order = ["active", "warning", "suspended", "cancelled"]
    return [(s, counts[s]) for s in order + sorted(set(counts) - set(order)) if counts[s] or s in order]


# -- all of it ---------------------------------------------------------------------------------


def compute(facts: Facts, start: date, end: date, as_of: date, currency: str, catalog: str | None = None) -> Overview:
    """Every figure of the overview over [start, end] (end inclusive), in one currency (money of
    two currencies is never added), for one catalog or all; `as_of` (today) caps the range."""
    if end < start:
        raise ValueError("end: the range ends before it starts")
    facts = narrow(facts, currency, catalog)
    last = min(end, as_of)
    months = months_in(start, end)
    recurring = Recurring(facts.invoices)
    customers = [*(f.customer_id for f in facts.invoices), *(r.customer_id for r in facts.receivables)]
    return Overview(
        currency=currency, catalog=catalog, start=start, end=end,
        mrr=recurring.mrr(last), arr=cents(recurring.mrr(last) * 12),
        mrr_by_month=[(m, recurring.mrr(min(_next_month(m) - timedelta(days=1), last))) for m in months],
        revenue=revenue_by_month(facts, months, start, end),
        movements=movements(recurring, months, start, last),
        net_revenue_retention=net_revenue_retention(recurring, start, last),
        failed_payments=failed_payments(facts.payments, months, start, end),
        receivables=receivables_by_age(facts.receivables, as_of),
        dunning=dunning_pipeline(facts.dunning, customers),
        top_plans=top_plans(recurring, last),
    )


class _Located(Protocol):
    @property
    def invoice_id(self) -> str | None: ...
    @property
    def currency(self) -> str: ...


_L = TypeVar("_L", bound=_Located)


def narrow(facts: Facts, currency: str, catalog: str | None) -> Facts:
    """The facts of one currency and (when given) one catalog."""
    def located(items: Iterable[_L]) -> list[_L]:
        """Payments, refunds and receivables know their invoice, not its catalog."""
        return [x for x in items if x.currency == currency
                and (catalog is None or facts.invoice_catalogs.get(x.invoice_id or "") == catalog)]

    return Facts(
        invoices=[f for f in facts.invoices if f.currency == currency and (catalog is None or f.catalog == catalog)],
        payments=located(facts.payments), refunds=located(facts.refunds), receivables=located(facts.receivables),
        dunning=facts.dunning, invoice_catalogs=facts.invoice_catalogs,
    )


def _next_month(m: date) -> date:
    return date(m.year + 1, 1, 1) if m.month == 12 else date(m.year, m.month + 1, 1)
