"""Progressive billing decisions (pure): which threshold of accrued usage charges a period has
reached, and whether that calls for an interim invoice.

A plan's `progressive_billing: {thresholds: [t1, t2, ...], then_every: E}` names levels: level k
is t_k for k <= n, then t_n + (k - n) x E. The accrued usage charges of a period are the
amounts of its in-arrears lines priced with the usage so far (tiers across the whole period,
before discounts and tax, the minimum's true-up excepted): what the close would bill for usage
now. A period that reached level k is invoiced once for it; one invoice covers every level a
jump crossed (the highest), so a level is never invoiced twice and the levels invoiced rise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from engine.catalog.model import ProgressiveBilling
from engine.money import ZERO
from engine.pricing.bill import Line
from engine.pricing.document import TRUE_UP, Billed, Document, Piece, price_document, price_piece
from engine.pricing.taxes import NO_TAX, TaxDecision


def threshold(pb: ProgressiveBilling, level: int) -> Decimal | None:
    """The accrued amount of level `level` (1-based); None past the last without then_every."""
    if level < 1:
        raise ValueError(f"levels start at 1, not {level}")
    n = len(pb.thresholds)
    if level <= n:
        return pb.thresholds[level - 1]
    if pb.then_every is None:
        return None
    return pb.thresholds[-1] + pb.then_every * (level - n)


def level_reached(pb: ProgressiveBilling, accrued: Decimal) -> int:
    """How many levels `accrued` has reached (a threshold is reached at equality)."""
    reached = sum(1 for t in pb.thresholds if accrued >= t)
    if reached == len(pb.thresholds) and pb.then_every is not None and pb.then_every > ZERO:
        reached += int((accrued - pb.thresholds[-1]) // pb.then_every)
    return reached


def accrued_usage(lines: Iterable[Line]) -> Decimal:
    """The accrued usage charges of a period's in-arrears lines (not the minimum's true-up)."""
    return sum((x.amount for x in lines if x.timing == "in_arrears" and x.price_id != TRUE_UP), ZERO)


def level_to_invoice(pb: ProgressiveBilling, accrued: Decimal, invoiced: int) -> int | None:
    """The level an interim invoice is issued for now, or None: only a level above the highest
    already invoiced in the period (`invoiced`, 0 for none), so a repeated check does nothing."""
    reached = level_reached(pb, accrued)
    return reached if reached > invoiced else None


@dataclass(frozen=True)
class Interim:
    """An interim invoice to issue: the level it is for, the accrued usage charges, the document."""

    level: int
    accrued: Decimal
    document: Document


def interim_invoice(so_far: Piece, pb: ProgressiveBilling, invoiced_level: int, invoiced: Billed,
                    tax: TaxDecision = NO_TAX) -> Interim | None:
    """The interim invoice a period calls for now, or None. `so_far`: the period's in-arrears
    piece as its close would price it now (usage so far, discounts, no minimum); `invoiced`:
    what the period's earlier interim invoices billed (their highest level `invoiced_level`).
    The document bills the usage so far less what was invoiced, price by price, each line's
    discount and tax rounded as the close rounds them; one whose total is not above zero (all
    discounted) is not issued."""
    accrued = accrued_usage(price_piece(so_far, tax).lines)
    level = level_to_invoice(pb, accrued, invoiced_level)
    if level is None:
        return None
    doc = price_document([replace(so_far, interim=True, replaces=invoiced)], tax)
    if doc.total <= ZERO:
        return None
    return Interim(level, accrued, doc)


def deduction(closing: Piece, invoiced: Billed) -> Piece | None:
    """The piece that takes back, on the period's close, what its interim invoices billed."""
    if not invoiced.lines:
        return None
    return replace(closing, deducts=invoiced, minimum=False)


__all__ = ["Interim", "accrued_usage", "deduction", "interim_invoice", "level_reached", "level_to_invoice",
           "threshold"]
