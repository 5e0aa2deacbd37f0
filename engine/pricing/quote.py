"""The quote output of FORMATS §5: a Bill as JSON-ready data (amounts as decimal strings)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.money import ZERO, Rounder
from engine.pricing.bill import Bill, Line
from engine.pricing.document import Document, PricedPiece


def fmt_quantity(q: Decimal) -> str:
    if q == q.to_integral_value():
        return str(q.quantize(Decimal(1)))
    return format(q.normalize(), "f")


def line_to_dict(line: Line, rounder: Rounder) -> dict[str, Any]:
    out: dict[str, Any] = {
        "price_id": line.price_id,
        "name": line.name,
        "model": line.model,
        "timing": line.timing,
        "kind": line.kind,
        "quantity": fmt_quantity(line.quantity),
        "amount": rounder.fmt(line.amount),
        "discount": rounder.fmt(line.discount),
        "tax": rounder.fmt(line.tax),
        "total": rounder.fmt(line.total),
        # Tier amounts are shown rounded; the line amount is the exact sum rounded once.
        "tiers": [
            {"tier": t.tier, "quantity": fmt_quantity(t.quantity), "amount": rounder.fmt(t.amount)} for t in line.tiers
        ],
    }
    if line.detail:
        out["detail"] = {k: fmt_quantity(v) for k, v in line.detail}
    if line.period is not None:
        out["period"] = {"start": line.period.start.isoformat(), "end": line.period.end.isoformat()}
    if line.note:
        out["note"] = line.note
    return out


def piece_to_dict(priced: PricedPiece, rounder: Rounder) -> dict[str, Any]:
    """One piece of a document: which plan, at which quantity, over which days of the period,
    and what its lines add up to (the document's figures are the sums over its pieces)."""
    piece, lines = priced.piece, priced.lines
    return {
        "plan": piece.plan.id,
        "part": "advance" if "in_advance" in piece.timings else "arrears",
        "credit": piece.credit,
        "quantity": fmt_quantity(piece.quantity),
        "from": (piece.charge_from or piece.period.start).isoformat(),
        "until": (piece.charge_until or piece.period.end).isoformat(),
        "subtotal": rounder.fmt(sum((x.amount for x in lines), ZERO)),
        "discount": rounder.fmt(sum((x.discount for x in lines), ZERO)),
        "tax": rounder.fmt(sum((x.tax for x in lines), ZERO)),
        "total": rounder.fmt(sum((x.total for x in lines), ZERO)),
    }


def bill_to_dict(bill: Bill | Document, rounder: Rounder) -> dict[str, Any]:
    out = {
        "plan": bill.plan,
        "currency": bill.currency,
        "period": {"start": bill.period.start.isoformat(), "end": bill.period.end.isoformat()},
        "lines": [line_to_dict(line, rounder) for line in bill.lines],
        "subtotal": rounder.fmt(bill.subtotal),
        "discount": rounder.fmt(bill.discount),
        "discounts": [
            {"source": d.source, "reason": d.reason, "amount": rounder.fmt(d.amount)} for d in bill.discounts
        ],
        "tax": rounder.fmt(bill.tax),
        "tax_detail": {
            "rate": str(bill.tax_decision.rate),
            "country": bill.tax_decision.country,
            "reverse_charge": bill.tax_decision.reverse_charge,
        },
        "total": rounder.fmt(bill.total),
        "rules": [dict(r) for r in bill.rules],
    }
    if isinstance(bill, Document):  # an extension of FORMATS §5: the pieces it was priced in
        out["pieces"] = [piece_to_dict(p, rounder) for p in bill.pieces]
    return out
