"""The overview page's data: the facts read through the sales, payments and dunning read
functions (`OverviewReaders`, bound in engine/system/console_readers.py: this module imports
none of those subsystems), and the figures `engine.console.figures` computes from them."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from engine.console.figures import Facts, Overview, OwedFact, PaidFact, RefundedFact, compute
from engine.sales.reporting import InvoiceFact

T_co = TypeVar("T_co", covariant=True)


class FactsBetween(Protocol[T_co]):
    """(session, first day, day after the last, currency or None: all) -> the facts."""

    def __call__(self, session: Session, start: date, end: date, *, currency: str | None = None) -> Sequence[T_co]: ...


class OpenFacts(Protocol):
    """(session, currency or None: all) -> what is still owed today."""

    def __call__(self, session: Session, *, currency: str | None = None) -> Sequence[OwedFact]: ...


@dataclass(frozen=True)
class OverviewReaders:
    invoices: FactsBetween[InvoiceFact]
    payments: FactsBetween[PaidFact]
    refunds: FactsBetween[RefundedFact]
    receivables: OpenFacts
    # (session, invoice ids) -> invoice id -> the catalog it was billed from.
    invoice_catalogs: Callable[[Session, Iterable[str]], dict[str, str]]
    # (session, first day, day after the last) -> currency -> how many invoices.
    invoice_currencies: Callable[[Session, date, date], dict[str, int]]
    # (session) -> customer -> its recorded dunning state.
    dunning_states: Callable[[Session], dict[str, str]]


@dataclass(frozen=True)
class Choices:
    """What the page's filters offer: the currencies and catalogs invoices were billed in."""

    currencies: list[str]
    catalogs: list[str]


def read_facts(session: Session, read: OverviewReaders, start: date, end: date, *, currency: str | None = None,
               with_catalogs: bool = False) -> Facts:
    """The facts of [start, end] (end inclusive), and the day before (the range's opening MRR),
    of one `currency` when given (the figures are of one: the others need not be read)."""
    until = end + timedelta(days=1)
    payments = read.payments(session, start, until, currency=currency)
    refunds = read.refunds(session, start, until, currency=currency)
    receivables = read.receivables(session, currency=currency)
    ids: set[str] = set()
    if with_catalogs:  # payments know their invoice, not its catalog: sales says it
        ids = {x.invoice_id for xs in (payments, refunds, receivables) for x in xs if x.invoice_id}
    return Facts(
        invoices=read.invoices(session, start - timedelta(days=1), until, currency=currency),
        payments=payments, refunds=refunds, receivables=receivables,
        dunning=read.dunning_states(session),
        invoice_catalogs=read.invoice_catalogs(session, ids) if ids else {},
    )


def currencies(session: Session, read: OverviewReaders, start: date, end: date) -> list[str]:
    """The currencies billed in the range, the most used first (one GROUP BY, no rows read)."""
    counts = read.invoice_currencies(session, start - timedelta(days=1), end + timedelta(days=1))
    return sorted(counts, key=lambda c: (-counts[c], c))


def choices(facts: Facts) -> Choices:
    counts: dict[str, int] = {}
    for f in facts.invoices:
        counts[f.currency] = counts.get(f.currency, 0) + 1
    return Choices(sorted(counts, key=lambda c: (-counts[c], c)),
                   sorted({f.catalog for f in facts.invoices if f.catalog}))


def overview(session: Session, read: OverviewReaders, start: date, end: date, *, as_of: date, currency: str,
             catalog: str | None = None) -> Overview:
    """Every figure of the overview page for [start, end] in `currency` (and `catalog`)."""
    if end < start:
        raise ValueError("end: the range ends before it starts")
    with no_cycle_collection():
        facts = read_facts(session, read, start, end, currency=currency, with_catalogs=catalog is not None)
        return compute(facts, start, end, as_of, currency, catalog)


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while 100,000s of small rows (tuples, no cycles) are
    built: collections triggered by the allocations otherwise walk the rows built so far
    again and again (benchmarks/console.py, docs/console.md "Speed"). Restored after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
