"""The one pricing function: every document (a quote, an invoice, a credit note) is a list of
pieces, each piece some of one plan's prices over one service period, priced by the same
`PeriodPricer` with the discounts of that period and what earlier documents billed of it.

A period's in-advance prices are invoiced when it opens, its in-arrears usage and minimum
when it closes, changes in between as prorated pieces, late usage as the difference from what
was billed. Because discounts and tax are rounded per line and amounts off are kept per
period, the documents of a period always add up, cent for cent, to the quote of that period
priced at once with the same inputs (docs/sales.md, "How a period is priced").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from itertools import pairwise
from types import MappingProxyType
from typing import Any

from engine.catalog.model import Catalog, Plan
from engine.money import HUNDRED, ZERO, Rounder
from engine.periods import Period
from engine.pricing.bill import BOTH_TIMINGS, ONE, AppliedDiscount, Line, PeriodPricer, coverage, take_amount
from engine.pricing.discounts import Discount
from engine.pricing.taxes import NO_TAX, TaxDecision
from engine.pricing.usage import MetricUsage

TRUE_UP = "minimum_commitment"
ADVANCE = frozenset({"in_advance"})
ARREARS = frozenset({"in_arrears"})
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LineTotals:
    """What was billed for one price of a period: quantity, amount, discount, tax."""

    quantity: Decimal = ZERO
    amount: Decimal = ZERO
    discount: Decimal = ZERO
    tax: Decimal = ZERO

    def plus(self, other: LineTotals) -> LineTotals:
        return LineTotals(
            self.quantity + other.quantity,
            self.amount + other.amount,
            self.discount + other.discount,
            self.tax + other.tax,
        )

    def as_dict(self) -> dict[str, str]:
        return {k: str(getattr(self, k)) for k in ("quantity", "amount", "discount", "tax")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LineTotals:
        return cls(*(Decimal(str(data.get(k, "0"))) for k in ("quantity", "amount", "discount", "tax")))


@dataclass(frozen=True, slots=True)
class Billed:
    """What documents billed of one service period (or one part of it): the history the
    minimum commitment, amounts off and late usage are priced against."""

    gross: Decimal = ZERO  # line amounts, the true-up excepted: what the minimum compares
    net: Decimal = ZERO  # amounts less percent discounts, true-up included: what amounts off take from
    amount_off: Mapping[str, Decimal] = field(default_factory=dict)  # by discount source
    lines: Mapping[str, LineTotals] = field(default_factory=dict)  # by price id

    def plus(self, other: Billed) -> Billed:
        amount_off = dict(self.amount_off)
        for source, value in other.amount_off.items():
            amount_off[source] = amount_off.get(source, ZERO) + value
        lines = dict(self.lines)
        for pid, totals in other.lines.items():
            lines[pid] = lines[pid].plus(totals) if pid in lines else totals
        return Billed(self.gross + other.gross, self.net + other.net, amount_off, lines)

    def as_dict(self, *, lines: bool = True) -> dict[str, Any]:
        """As JSON data; `lines=False` leaves the per-price figures out (only a period's
        closing is ever priced again against them: late usage)."""
        out: dict[str, Any] = {"gross": str(self.gross), "net": str(self.net)}
        if self.amount_off:
            out["amount_off"] = {k: str(v) for k, v in self.amount_off.items()}
        if lines and self.lines:
            out["lines"] = {k: v.as_dict() for k, v in self.lines.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Billed:
        return cls(
            Decimal(str(data.get("gross", "0"))),
            Decimal(str(data.get("net", "0"))),
            {k: Decimal(str(v)) for k, v in (data.get("amount_off") or {}).items()},
            {k: LineTotals.from_dict(v) for k, v in (data.get("lines") or {}).items()},
        )


NOTHING = Billed()


def held_minimum(held: Sequence[tuple[Plan, date]], period: Period) -> tuple[date | None, Decimal]:
    """A period's plans in the order they were held, each with the day it was taken (the
    first on the period's start): each plan commits to its minimum for the days it was held
    (docs/sales.md, "How a minimum treats a change of plan"). Returns when the last plan was
    taken (None: from the start) and what the plans before it commit to, as minimum x days,
    kept exact so the period's minimum is divided by its days and rounded once, at its close."""
    earlier = ZERO
    for (plan, start), (_, until) in pairwise(held):
        earlier += plan.minimum_amount * max((until - start).days, 0)
    last = held[-1][1] if held else None
    return (last if last is not None and last > period.start else None), earlier


def total_of(parts: Iterable[Billed]) -> Billed:
    out = NOTHING
    for part in parts:
        out = out.plus(part)
    return out


@dataclass(frozen=True, slots=True)
class Piece:
    """Some of one plan's prices over one service period, on one document.

    - `timings`: which prices (in_advance, in_arrears or both);
    - `charge_from` / `charge_until`: the part of the period in-advance prices (and the
      minimum) cover, prorated by days;
    - `discounts`: those of this service period (coupon, pricing rules);
    - `minimum`: settle the minimum commitment here (the period's close); `charge_from` /
      `charge_until` prorate this plan's minimum to the days it was held, and `held_minimum`
      is what the plans held before it in the period commit to (see `held_minimum`);
    - `before`: what earlier documents billed of this period;
    - `credit`: the piece is given back (unused time): the exact negation of what the same
      inputs charge;
    - `replaces`: late usage: bill the difference from what these documents billed;
    - `interim`: progressive billing: the usage so far of a period still open, billed as the
      difference from what earlier interim invoices billed of it (`replaces`);
    - `deducts`: the period's close takes back what its interim invoices billed (each price's
      amount, discount and tax negated exactly, so the period's documents still add up to its
      quote cent for cent).
    """

    catalog: Catalog
    plan: Plan
    period: Period
    timings: frozenset[str] = BOTH_TIMINGS
    quantity: Decimal = ONE
    usage: Mapping[str, MetricUsage] = field(default_factory=lambda: _EMPTY)
    charge_from: date | None = None
    charge_until: date | None = None
    trial_end: date | None = None
    discounts: tuple[Discount, ...] = ()
    minimum: bool = False
    held_minimum: Decimal = ZERO
    before: Billed = NOTHING
    credit: bool = False
    replaces: Billed | None = None
    rules: tuple[Mapping[str, Any], ...] = ()
    interim: bool = False
    deducts: Billed | None = None


@dataclass(frozen=True, slots=True)
class PricedPiece:
    piece: Piece
    lines: tuple[Line, ...]
    billed: Billed  # what this piece adds to its period's history
    discounts: tuple[AppliedDiscount, ...]


def price_piece(piece: Piece, tax: TaxDecision = NO_TAX) -> PricedPiece:
    """One piece as lines, each with its discount and tax."""
    if piece.deducts is not None:
        return _deduction(piece, piece.deducts)
    rounder = piece.catalog.rounder
    percent = tuple(d for d in piece.discounts if d.percent is not None)
    amounts_off = [d for d in piece.discounts if d.percent is None]
    bill = PeriodPricer(
        piece.catalog,
        piece.plan,
        piece.period,
        timings=piece.timings,
        charge_from=piece.charge_from,
        charge_until=piece.charge_until,
        trial_end=piece.trial_end,
        discounts=percent,
        minimum=piece.minimum,
        prior_charged=piece.before.gross,
        held_minimum=piece.held_minimum,
    ).bill(piece.quantity, piece.usage)
    lines = [_labelled(line, piece) for line in bill.lines]
    applied = [AppliedDiscount(d.source, d.reason, -d.amount if piece.credit else d.amount) for d in bill.discounts]
    net = sum((x.amount - x.discount for x in lines), ZERO)
    gross = sum((x.amount for x in lines if x.price_id != TRUE_UP), ZERO)
    amount_off = _take_amounts_off(lines, amounts_off, piece.before, net, rounder, applied)
    lines = [_taxed(x, tax, rounder) for x in lines]
    billed = Billed(gross, net, amount_off, _totals(lines))
    if piece.replaces is not None:
        return _difference(piece, lines, billed, applied)
    return PricedPiece(piece, tuple(lines), billed, tuple(applied))


def _labelled(line: Line, piece: Piece) -> Line:
    """A prorated in-advance line says which days it gives back or charges; a credit is the
    negation of the charge the same inputs make."""
    days, total = coverage(piece.period, piece.charge_from, piece.charge_until)
    if line.timing == "in_advance" and (days != total or piece.credit):
        word, note = ("Unused", "credit") if piece.credit else ("Remaining", "charge")
        line = line._replace(
            name=f"{word} {line.name or line.price_id} ({days}/{total} days)",
            kind="proration",
            note=f"{note}:{piece.plan.id}",
        )
    return line.negated() if piece.credit else line


def _take_amounts_off(
    lines: list[Line],
    amounts_off: Sequence[Discount],
    before: Billed,
    net: Decimal,
    rounder: Rounder,
    applied: list[AppliedDiscount],
) -> dict[str, Decimal]:
    """Amounts off are kept per period: over all its documents a period gets min(amount, what
    is left to discount of it), so each document takes (or a credit gives back) the change.
    Lines are updated in place; returns what each source took here."""
    left = max(before.net + net, ZERO)
    taken: dict[str, Decimal] = {}
    for d in amounts_off:
        target = min(rounder(d.amount or ZERO), left)
        left -= target
        change = target - before.amount_off.get(d.source, ZERO)
        if change == ZERO:
            continue
        targets = [i for i, x in enumerate(lines) if not d.prices or x.price_id in d.prices]
        rests = [x.amount - x.discount for x in lines]
        shares, got = take_amount(rests, targets, change)
        for i, share in shares:
            lines[i] = lines[i]._replace(discount=lines[i].discount + share)
        if got != ZERO:
            taken[d.source] = got
            applied.append(AppliedDiscount(d.source, d.reason, got))
    return taken


def _taxed(line: Line, tax: TaxDecision, rounder: Rounder) -> Line:
    if not tax.rate:
        return line
    return line._replace(tax=rounder((line.amount - line.discount) * tax.rate / HUNDRED))


def _totals(lines: Iterable[Line]) -> dict[str, LineTotals]:
    out: dict[str, LineTotals] = {}
    for x in lines:
        t = LineTotals(x.quantity, x.amount, x.discount, x.tax)
        out[x.price_id] = out[x.price_id].plus(t) if x.price_id in out else t
    return out


def _difference(piece: Piece, lines: list[Line], billed: Billed, applied: list[AppliedDiscount]) -> PricedPiece:
    """Late usage: the period priced again with every event now known, less what was billed
    for it, as adjustment lines that name the period (the true-up follows the usage)."""
    assert piece.replaces is not None
    old = piece.replaces
    out: list[Line] = []
    by_id = {x.price_id: x for x in lines}
    what, kind = (
        ("usage so far (progressive billing)", "progressive") if piece.interim else ("late usage", "adjustment")
    )
    for pid in list(by_id) + [p for p in old.lines if p not in by_id]:
        # A price billed before and gone now is a line of nothing: all of it given back.
        new = by_id.get(pid) or Line(pid, "", "adjustment", "in_arrears", ZERO, ZERO)
        was = old.lines.get(pid, LineTotals())
        amount, discount, tax = new.amount - was.amount, new.discount - was.discount, new.tax - was.tax
        if amount == discount == tax == ZERO:
            continue
        out.append(
            Line(
                pid,
                f"{new.name or pid} - {what} for {piece.period}",
                new.model,
                "in_arrears",
                new.quantity - was.quantity,
                amount,
                kind=kind,
                period=piece.period,
                note=f"{what} for period {piece.period}",
                discount=discount,
                tax=tax,
            )
        )
    change = Billed(
        billed.gross - old.gross,
        billed.net - old.net,
        {k: v - old.amount_off.get(k, ZERO) for k, v in {**old.amount_off, **billed.amount_off}.items()},
        _totals(out),
    )
    change = replace(change, amount_off={k: v for k, v in change.amount_off.items() if v != ZERO})
    merged = _merge_applied(applied, [AppliedDiscount(s, "", -v) for s, v in old.amount_off.items()])
    return PricedPiece(piece, tuple(out), change, merged)


def _deduction(piece: Piece, billed: Billed) -> PricedPiece:
    """What the period's interim (progressive) invoices billed, taken back on its close: one
    line per price with every figure negated as billed (not priced again, so no rounding
    differs), naming what it deducts."""
    names = {p.id: p.name or p.id for p in piece.plan.prices}
    lines = tuple(
        Line(
            pid,
            f"{names.get(pid, pid)} - already invoiced progressively for {piece.period}",
            "adjustment",
            "in_arrears",
            -t.quantity,
            -t.amount,
            kind="progressive_deduction",
            period=piece.period,
            note=f"deducts the progressive invoices of period {piece.period}",
            discount=-t.discount,
            tax=-t.tax,
        )
        for pid, t in billed.lines.items()
        if (t.amount, t.discount, t.tax) != (ZERO, ZERO, ZERO)
    )
    negated = Billed(
        -billed.gross,
        -billed.net,
        {k: -v for k, v in billed.amount_off.items() if v != ZERO},
        {pid: LineTotals(-t.quantity, -t.amount, -t.discount, -t.tax) for pid, t in billed.lines.items()},
    )
    applied = tuple(AppliedDiscount(s, "", -v) for s, v in billed.amount_off.items() if v != ZERO)
    return PricedPiece(piece, lines, negated, applied)


def _merge_applied(*groups: Iterable[AppliedDiscount]) -> tuple[AppliedDiscount, ...]:
    """Applied discounts summed by source (the first reason given wins)."""
    merged: dict[str, AppliedDiscount] = {}
    for group in groups:
        for d in group:
            was = merged.get(d.source)
            merged[d.source] = d if was is None else was._replace(amount=was.amount + d.amount)
    return tuple(d for d in merged.values() if d.amount != ZERO)


class Document:
    """A priced document: its pieces' lines in order; every total is the sum of its lines."""

    __slots__ = ("catalog", "currency", "discounts", "lines", "period", "pieces", "plan", "rules", "tax_decision")

    def __init__(
        self,
        catalog: Catalog,
        pieces: Sequence[PricedPiece],
        tax: TaxDecision,
        *,
        plan: str,
        period: Period,
        extra: Sequence[Line] = (),
        rules: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.catalog = catalog
        self.currency = catalog.currency
        self.pieces = tuple(pieces)
        self.lines = tuple(x for p in pieces for x in p.lines) + tuple(extra)
        self.tax_decision = tax
        self.plan = plan
        self.period = period
        self.rules = tuple(rules) or tuple(r for p in pieces for r in p.piece.rules)
        self.discounts = _merge_applied(*(p.discounts for p in pieces))

    @property
    def subtotal(self) -> Decimal:
        return sum((x.amount for x in self.lines), ZERO)

    @property
    def discount(self) -> Decimal:
        return sum((x.discount for x in self.lines), ZERO)

    @property
    def tax(self) -> Decimal:
        return sum((x.tax for x in self.lines), ZERO)

    @property
    def total(self) -> Decimal:
        return sum((x.total for x in self.lines), ZERO)

    def billed(self) -> list[tuple[Piece, Billed]]:
        """What each piece adds to the history of its period (for the next documents)."""
        return [(p.piece, p.billed) for p in self.pieces]

    def __repr__(self) -> str:
        return f"Document(plan={self.plan!r}, period={self.period}, total={self.total} {self.currency})"


def price_document(
    pieces: Sequence[Piece],
    tax: TaxDecision = NO_TAX,
    *,
    catalog: Catalog | None = None,
    plan: str | None = None,
    period: Period | None = None,
    extra: Sequence[Line] = (),
    rules: Sequence[Mapping[str, Any]] = (),
) -> Document:
    """Price every piece and put them on one document (`extra`: lines priced elsewhere;
    `rules`: the pricing rules trace, by default the pieces')."""
    # What the document is of, unless given: its first piece's, or (no piece) nothing.
    if pieces:
        first = pieces[0]
        of_catalog, of_plan, of_period = first.catalog, first.plan.id, first.period
    elif catalog is None:
        raise ValueError("a document needs a piece or a catalog")
    else:
        of_catalog, of_plan, of_period = catalog, "", Period(date.min, date.max)
    priced: list[PricedPiece] = []
    # Pieces of one period on one document see each other: an upgrade's new charge is priced
    # after the credit of the old one, a cancellation's minimum after the unused time.
    seen: dict[Period, Billed] = {}
    for p in pieces:
        if p.period in seen and p.replaces is None:
            p = replace(p, before=p.before.plus(seen[p.period]))
        done = price_piece(p, tax)
        seen[p.period] = seen.get(p.period, NOTHING).plus(done.billed)
        priced.append(done)
    return Document(
        catalog or of_catalog,
        priced,
        tax,
        plan=plan or of_plan,
        period=period or of_period,
        extra=extra,
        rules=rules,
    )


def whole_period(
    catalog: Catalog,
    plan: Plan,
    period: Period,
    *,
    quantity: Decimal = ONE,
    usage: Mapping[str, MetricUsage] | None = None,
    advance_discounts: Sequence[Discount] = (),
    arrears_discounts: Sequence[Discount] | None = None,
    charge_from: date | None = None,
    charge_until: date | None = None,
    trial_end: date | None = None,
    tax: TaxDecision = NO_TAX,
    rules: Sequence[Mapping[str, Any]] = (),
) -> Document:
    """A whole period as the engine invoices it: its in-advance prices as when it opens, then
    its in-arrears usage and minimum as when it closes, against what the opening billed.
    This is the quote (FORMATS §5) and what a period's documents add up to."""
    opening = price_piece(
        Piece(
            catalog,
            plan,
            period,
            ADVANCE,
            quantity,
            charge_from=charge_from,
            charge_until=charge_until,
            trial_end=trial_end,
            discounts=tuple(advance_discounts),
        ),
        tax,
    )
    closing = price_piece(
        Piece(
            catalog,
            plan,
            period,
            ARREARS,
            quantity,
            usage or _EMPTY,
            charge_from=charge_from,
            charge_until=charge_until,
            trial_end=trial_end,
            discounts=tuple(advance_discounts if arrears_discounts is None else arrears_discounts),
            minimum=True,
            before=opening.billed,
        ),
        tax,
    )
    doc = Document(catalog, [opening, closing], tax, plan=plan.id, period=period, rules=rules)
    return doc
