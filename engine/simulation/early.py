"""Progressive billing in a what-if: how many interim invoices a plan's thresholds would issue
for a customer's period, what they bill before the close, and proof that the period's total
is unchanged. The period is replayed with the engine's pure functions, as sales bills it
(docs/progressive-billing.md): `interim_invoice` on the usage so far after each day, then the
close with its `deduction`, against `whole_period` (the quote).

The what-if knows a customer's usage of a period, not when it arrived: it is taken to arrive
evenly, the period's usage x day / days after each day, and checked once a day (the engine
checks after every ingestion batch, so a day that crosses two levels issues one invoice here
and may issue two there). Before tax and without the pricing rules' discounts: thresholds are
levels of accrued usage charges, which are before discounts and tax, so neither changes how
many invoices are issued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from engine.catalog.model import Catalog, Plan
from engine.periods import Period
from engine.pricing import (
    ADVANCE,
    ARREARS,
    NOTHING,
    Line,
    MetricUsage,
    Piece,
    deduction,
    interim_invoice,
    level_reached,
    price_document,
    whole_period,
)
from engine.pricing.progressive import accrued_usage

ZERO = Decimal(0)
Usage = Mapping[str, MetricUsage]
# How a period's usage is scaled to a share of it (the what-if's own rounding of usage).
Scale = Callable[[dict[str, MetricUsage], Decimal], dict[str, MetricUsage]]


@dataclass(frozen=True)
class Replay:
    """One period replayed: the interim invoices issued, what they billed (tax included, here
    none), the period's documents in all and its quote."""

    invoices: int
    billed_early: Decimal
    documents: Decimal
    quote: Decimal


def reaches_a_level(plan: Plan, lines: Iterable[Line]) -> bool:
    """A cheap first look at the bill the what-if priced anyway: does the period's accrued
    usage reach the plan's first threshold at all? (Most periods do not: no replay.)"""
    pb = plan.progressive_billing
    return pb is not None and level_reached(pb, accrued_usage(lines)) > 0


def replay(catalog: Catalog, plan: Plan, period: Period, quantity: Decimal, usage: dict[str, MetricUsage],
           scale: Scale) -> Replay:
    """The period's documents with the plan's progressive billing: the opening, an interim
    invoice whenever the usage so far reaches a new level, the close that deducts them."""
    pb = plan.progressive_billing
    assert pb is not None
    opening = price_document([Piece(catalog, plan, period, ADVANCE, quantity)])
    before = opening.pieces[0].billed
    level, invoiced, invoices, early = 0, NOTHING, 0, ZERO
    days = period.days
    for day in range(1, days + 1):
        so_far = usage if day == days else scale(usage, Decimal(day) / Decimal(days))
        interim = interim_invoice(Piece(catalog, plan, period, ARREARS, quantity, so_far, before=before),
                                  pb, level, invoiced)
        if interim is None:
            continue
        level, invoices = interim.level, invoices + 1
        invoiced = invoiced.plus(interim.document.pieces[0].billed)
        early += interim.document.total
    closing = Piece(catalog, plan, period, ARREARS, quantity, usage, minimum=True, before=before)
    taken_back = deduction(closing, invoiced)
    close = price_document([closing, *([taken_back] if taken_back else [])])
    quote = whole_period(catalog, plan, period, quantity=quantity, usage=usage)
    return Replay(invoices, early, opening.total + early + close.total, quote.total)


@dataclass
class EarlyFigures:
    """One catalog's progressive billing over the run."""

    periods: int = 0  # customer-periods with at least one interim invoice
    invoices: int = 0
    billed_early: Decimal = ZERO  # what the interim invoices billed (before tax)
    period_total: Decimal = ZERO  # those periods' documents in all
    quote_total: Decimal = ZERO  # those periods' quotes: equal when nothing is billed twice or left out
    customers: set[int] | None = None

    def add(self, i: int, r: Replay) -> None:
        if not r.invoices:
            return
        self.periods += 1
        self.invoices += r.invoices
        self.billed_early += r.billed_early
        self.period_total += r.documents
        self.quote_total += r.quote
        if self.customers is None:
            self.customers = set()
        self.customers.add(i)

    def as_dict(self) -> dict[str, object]:
        return {"customers": len(self.customers or ()), "periods": self.periods, "invoices": self.invoices,
                "billed_early": self.billed_early, "period_total": self.period_total,
                "quote_total": self.quote_total, "unchanged": self.period_total == self.quote_total}
